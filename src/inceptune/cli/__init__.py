"""The `inceptune` command: parses arguments and delegates to the Python API.

User errors print one sentence and exit 2; an interrupted run exits 130
and keeps what is done (the feature cache). Bugs raise with a traceback.

Each module holds one group of commands; `COMMANDS` registers them in the
order `inceptune --help` lists them.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from typing import Annotated

import typer

import inceptune  # noqa: F401 (the API; sets TensorFlow's logging defaults before anything imports it)
from inceptune import console, hooks
from inceptune.cli import auditing, cache, demo, deployment, feature_files, networks, predictions, training
from inceptune.errors import UserError, WorkerLost
from inceptune.vocabulary.version import __version__

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Transfer learning with Inception-v3 (train, predict, evaluate, cv, explain), and Inception networks from scratch (build, train --arch).")


def _version(asked: bool) -> None:
    if asked:
        print(f"inceptune {__version__}")
        raise typer.Exit()


@app.callback()
def _global(quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only results and errors.")] = False,
            version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                  help="Print the version and exit.")] = False) -> None:
    console.set_quiet(quiet)


COMMANDS = (
    ("train", training.train), ("cv", training.cv), ("tune", training.tune), ("audit", auditing.audit),
    ("lr-find", training.lr_find),
    ("predict", predictions.predict), ("evaluate", predictions.evaluate), ("explain", predictions.explain),
    ("build", networks.build),
    ("export", deployment.export), ("serve", deployment.serve),
    ("features", feature_files.features), ("fit-features", feature_files.fit_features),
    ("similar", feature_files.similar),
    ("demo", demo.demo),
)
for _name, _command in COMMANDS:
    app.command(_name)(_command)
app.add_typer(cache.app, name="cache")

_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


class _Interrupted(BaseException):
    """Ctrl-C or SIGTERM. Not a KeyboardInterrupt: Typer turns those into a silent exit 130, and the user
    should hear that finished work is kept."""


def _interrupt(signum, frame):
    raise _Interrupted


def main() -> None:
    # Ctrl-C and SIGTERM always interrupt, even when the parent started us with SIGINT ignored (a shell's
    # background job, some test runners and process managers): Python then installs no handler of its own.
    saved = signal.signal(signal.SIGINT, _interrupt), signal.signal(signal.SIGTERM, _interrupt)
    try:
        _run()
    finally:  # when called in-process (tests, notebooks), the host's handlers come back
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])


def _run() -> None:
    try:
        hooks.reset()
        app()
    except UserError as exc:
        console.stop_progress()  # a bar left on screen would be drawn again after the message
        console.console.print(f"error: {exc}", style="bold red", markup=False, highlight=False)
        if isinstance(exc, WorkerLost):  # see WorkerLost: nothing is left to close cleanly
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exc.exit_code)
        sys.exit(exc.exit_code)
    except OSError as exc:
        if exc.errno not in _DISK_ERRORS:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        console.stop_progress()
        console.console.print(f"error: cannot write{where}: {exc.strerror}; finished work is kept, free space "
                              "or choose another folder and rerun.", style="bold red", markup=False, highlight=False)
        sys.exit(2)
    except (_Interrupted, KeyboardInterrupt):
        console.stop_progress()
        console.console.print("interrupted: finished work is kept (computed features stay in the cache; train keeps "
                              "its finished epochs in RUN/checkpoint, and `--resume` continues from them).",
                              style="yellow", markup=False)
        sys.exit(130)
