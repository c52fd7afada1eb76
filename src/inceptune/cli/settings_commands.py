"""The commands made from the settings table (train, cv, tune, audit, lr-find): DATA, --config FILE, and one
option per setting of the command, parsed and checked as the Python API checks its keywords."""

from __future__ import annotations

import inspect
import shutil
import textwrap
from typing import Annotated, Callable, Optional

import typer
from rich.markup import escape

from inceptune.settings import BASIC, DEFAULTS, TABLE, command_settings

_METAVARS = {"int": "INT", "float": "FLOAT", "path": "PATH", "str": "TEXT", "ints": "INT", "strs": "TEXT"}


def setting_option(name: str, help: str | None = None, hidden: bool = False) -> inspect.Parameter:
    """A command-line option for setting `name`, made from its Spec: given, it is parsed and checked like
    a Python value; not given (None), it leaves the default or the config file's value alone. `hidden`: listed
    by --help-all only."""
    spec = TABLE[name][1]
    flag, default = spec.cli_flag(name), DEFAULTS.get(name)
    names = [flag, *([spec.short] if spec.short else [])]
    if spec.kind == "bool":
        names = [f"{flag}/--no-{flag[2:]}"]
        shown = flag[2:] if default else f"no-{flag[2:]}"
        annotation = Optional[bool]
    else:
        shown = "none" if default in (None, ()) else f"{default:g}" if isinstance(default, float) else str(default)
        annotation = Optional[list[str]] if spec.kind in ("ints", "strs") else Optional[str]
    metavar = None if spec.kind == "bool" else "CHOICE" if spec.choices else _METAVARS[spec.kind]
    option = typer.Option(*names, help=f"{help or spec.help} {escape(f'[default: {shown}]')}", show_default=False,
                          metavar=metavar, hidden=hidden)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[annotation, option])


def json_flag(help: str) -> inspect.Parameter:
    """--json, an option of what the command prints (not a setting)."""
    return inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
        bool, typer.Option("--json", help=help)])


def settings_command(command: str, api: Callable, summary: str, helps: dict | None = None,
                     extra: list[inspect.Parameter] = (), show: Callable | None = None) -> Callable:
    """The command over `api`: DATA, --config FILE, every setting of `command` as an option, and `extra` options
    for `show(result, **extra)`; it calls `api(data, config=..., **the settings given)`."""
    data = inspect.Parameter("data", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=Annotated[
        Optional[str], typer.Argument(help=TABLE["data"][1].help + " Optional with --config.", show_default=False)])
    config = inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        Optional[str], typer.Option(help="Settings from a JSON, YAML or TOML file (a run's config.json replays the "
                                         "run); options given here override it.", metavar="FILE")])
    names = [n for n in command_settings(command) if n != "data"]
    options = [setting_option(n, (helps or {}).get(n), hidden=n not in BASIC) for n in names]
    every = inspect.Parameter("help_all", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
        bool, typer.Option("--help-all", is_eager=True, expose_value=False, callback=_every_setting(names, helps),
                           help=f"List all {len(names)} settings of this command and exit.")])

    def run(**given):
        data_value, config_value = given.pop("data"), given.pop("config")
        given.pop("help_all", None)  # --help-all printed and exited before this runs
        shown = {p.name: given.pop(p.name) for p in extra}
        settings = {n: TABLE[n][1].parse(n, v) for n, v in given.items() if v is not None and v != []}
        result = api(data_value, config=config_value, **settings)
        if show is not None:
            show(result, **shown)

    run.__signature__ = inspect.Signature([data, config, *options, *extra, every])
    run.__doc__ = summary
    return run


def _every_setting(names: list[str], helps: dict | None) -> Callable[[bool], None]:
    """--help-all: every setting of the command, its flag, default and help, as plain text at the terminal's
    width (the --help panels show the BASIC ones)."""

    def show(asked: bool) -> None:
        if not asked:
            return
        width = max(40, min(shutil.get_terminal_size((80, 24)).columns, 100))
        for name in names:
            spec, default = TABLE[name][1], DEFAULTS.get(name)
            shown = "none" if default in (None, ()) else str(default)
            print(f"{spec.cli_flag(name)}  [default: {shown}]")
            print(textwrap.fill((helps or {}).get(name) or spec.help, width, initial_indent="    ",
                                subsequent_indent="    "))
        raise typer.Exit()

    return show
