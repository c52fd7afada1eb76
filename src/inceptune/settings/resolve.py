"""From what a caller gave to checked `Settings`, before any image is read.

    a config file (JSON, YAML or TOML; flat, or nested by group as config.json is)
      <- overridden by keywords (Python) or flags (command line)
      -> every value checked against its Spec (type, range, choices)
      -> settings the command or the chosen recipe does not use are refused, not dropped
      -> combinations checked (an --aug-views without --augment, a --resume without --out, ...)

Each API function (`train`, `cross_validate`, `lr_find`) calls `resolve`
first, and gets its signature and the Args of its docstring from the same
table (`api_signature`, `documented`), so `help(inceptune.train)` lists every
parameter with its default.
"""

from __future__ import annotations

import difflib
import inspect
import json
import os
from pathlib import Path

from inceptune import console
from inceptune.errors import UserError
from inceptune.vocabulary.sources import source_blocks
from inceptune.vocabulary.inception import MIN_IMAGE_SIZE
from inceptune.settings.schema import (
    DEFAULTS,
    PLOT_SUFFIXES,
    TABLE,
    WIDTH_ARCHITECTURES,
    CvOptions,
    DataSettings,
    Recipe,
    RunOptions,
    ScratchSettings,
    Settings,
    StudyOptions,
    SweepOptions,
)
from inceptune.settings.spec import PRETRAINED, SCRATCH, SettingError
from inceptune.vocabulary.policies import resolve_policy

# What each command reads: its groups, less the settings it has no use for.
COMMANDS: dict[str, dict] = {
    "train": {"groups": ("data", "recipe", "scratch", "run", "study"), "unused": ()},
    "cv": {"groups": ("data", "recipe", "run", "cv", "study"),
           "unused": ("test_split", "from_model", "unsafe", "resume", "track", "tracking_uri", "tensorboard", "ood",
                      "export")},
    "tune": {"groups": ("data", "recipe", "run", "study"),
             "unused": ("search", "refit", "calibrate", "ood", "export", "from_model", "unsafe", "resume", "track", "tracking_uri", "tensorboard",
                        "augment", "aug", "aug_views", "fine_tune_epochs", "fine_tune_lr", "unfreeze_from",
                        "unfreeze_top", "unfreeze_every", "block_lr_decay", "train_batchnorm", "fine_tune_augment",
                        "patience", "schedule", "warmup_epochs")},
    "lr_find": {"groups": ("data", "recipe", "run", "sweep"),
                "unused": ("search", "feature_block", "pooling", "head", "l2", "weight_decay", "refit", "calibrate", "ood",
                           "from_model", "unsafe", "epochs", "learning_rate", "schedule", "warmup_epochs", "augment",
                           "aug", "aug_views", "class_weight", "fine_tune_epochs", "fine_tune_lr", "unfreeze_every",
                           "block_lr_decay", "train_batchnorm", "fine_tune_augment", "patience", "out", "overwrite",
                           "resume", "tensorboard", "track", "tracking_uri", "precision", "distribute", "export")},
}
# audit reads the data settings and what its one backbone pass needs: the weights, the size, the cache.
COMMANDS["audit"] = {"groups": ("data", "recipe", "run"), "unused": tuple(
    name for name, (group, _) in TABLE.items() if group in ("recipe", "run")
    and name not in ("weights", "image_size", "batch_size", "out", "overwrite", "cache_dir", "precision",
                     "extract_runtime"))}
RECORDED = ("resolved", "versions")  # sections of config.json that record facts, not settings
# Where and how a recorded run was written: replaying its config.json must not write there again.
NOT_REPLAYED = ("out", "overwrite", "resume")
WHY_UNUSED = {"cv": "cv", "lr_find": "lr-find", "audit": "audit (it reads the cached features of the "
                                                                    "images; recipe settings are train's)", "tune": "tune (it scores heads on cached features; the "
                                                            "fine-tuning and augmentation settings are train's)"}


def command_settings(command: str) -> list[str]:
    """The names `command` accepts, in table order."""
    spec = COMMANDS[command]
    return [name for name, (group, _) in TABLE.items() if group in spec["groups"] and name not in spec["unused"]]


def resolve(command: str, given: dict, config: str | None = None) -> Settings:
    """Checked Settings for `command` from a config file and the settings `given` (which win)."""
    for name in given:
        if name not in TABLE or TABLE[name][0] not in COMMANDS[command]["groups"]:
            raise _unknown(command, name)
    from_file = {**_from_environment(command), **(read_config_file(config) if config is not None else {})}
    if from_file.get("arch") and command != "train":
        raise SettingError(f"{config} is a run of --arch {from_file['arch']} (a network from scratch); "
                           f"{command.replace('_', '-')} works with the pretrained recipe.")
    checked = {name: TABLE[name][1].check(name, value) for name, value in {**from_file, **given}.items()
               if name in given or TABLE[name][0] in COMMANDS[command]["groups"]}
    if checked.get("data") is None:
        raise UserError("Give the data to train on: a folder of images (or arrays, or a CSV), or a --config file "
                        "that names it.")
    groups = {"data": DataSettings, "recipe": Recipe, "scratch": ScratchSettings, "run": RunOptions,
              "cv": CvOptions, "sweep": SweepOptions, "study": StudyOptions}
    settings = Settings(**{g: cls(**{k: v for k, v in checked.items() if TABLE[k][0] == g})
                           for g, cls in groups.items()},
                        given=frozenset(k for k, v in checked.items() if k in given or not _is_default(k, v)))
    _refuse_unused(command, settings, {k: v for k, v in checked.items() if k in given})
    settings = _leave_out_unused(command, settings, {k for k, v in from_file.items()
                                                     if k not in given and not _is_default(k, v)}, config)
    settings = _derived(settings, given, from_file)
    check_combination(command, settings)
    return settings


def _from_environment(command: str) -> dict:
    """Settings whose default an environment variable replaces (Spec.env), as text, like a config file's."""
    found = {}
    for name in command_settings(command):
        spec = TABLE[name][1]
        if spec.env and os.environ.get(spec.env):
            found[name] = os.environ[spec.env]
    return found


def _unknown(command: str, name: str) -> SettingError:
    by_flag = {TABLE[n][1].flag: n for n in command_settings(command) if TABLE[n][1].flag}
    close = [by_flag[name]] if name in by_flag else difflib.get_close_matches(name, command_settings(command), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f"; {command.replace('_', '-')} takes " \
                                                          f"{', '.join(command_settings(command))}."
    return SettingError(f"'{name}' is not a setting of {command.replace('_', '-')}{hint}")


def uses(command: str, settings: Settings) -> set[str]:
    """The settings `command` reads with the chosen recipe (train --arch: the scratch recipe)."""
    names = set(command_settings(command))
    if command == "train":
        recipe = SCRATCH if settings.scratch.arch else PRETRAINED
        names = {n for n in names if recipe in TABLE[n][1].recipes}
    return names


def _refuse_unused(command: str, settings: Settings, checked: dict) -> None:
    used = uses(command, settings)
    for name, value in checked.items():
        if name in used or value == DEFAULTS.get(name):
            continue
        spec = TABLE[name][1]
        if command == "train":
            recipe = "train --arch (a network from scratch)" if settings.scratch.arch else \
                "the pretrained recipe (it applies with --arch)"
            raise SettingError(f"The '{name}' setting ({spec.cli_flag(name)}) is not used by {recipe}; "
                               "leave it out.")
        raise SettingError(f"The '{name}' setting ({spec.cli_flag(name)}) is not used by "
                           f"{WHY_UNUSED[command]}; leave it out.")


def _leave_out_unused(command: str, settings: Settings, from_file: set[str], config: str | None) -> Settings:
    """A config file may record more than this command uses (cv reading a run's config.json): those
    settings keep their defaults, and the user is told which."""
    unused = sorted(from_file - uses(command, settings))
    if not unused:
        return settings
    console.info(f"{config}: {', '.join(unused)} left out ({command.replace('_', '-')} does not use "
                 f"{'it' if len(unused) == 1 else 'them'}).")
    kept = [name for name in unused if TABLE[name][0] in COMMANDS[command]["groups"]]
    return settings.replace(**{name: DEFAULTS[name] for name in kept})


def _is_default(name: str, value) -> bool:
    return (tuple(value) if isinstance(value, list) else value) == DEFAULTS.get(name)


def _derived(settings: Settings, given: dict, from_file: dict) -> Settings:
    """--unfreeze-top N names the deepest block too: mixed(11 - N). One given here wins over the file's."""
    top = settings.recipe.unfreeze_top
    if top is None:
        return settings
    if "unfreeze_from" in given and "unfreeze_top" not in given:  # the flag overrides the file's --unfreeze-top
        return settings.replace(unfreeze_top=None)
    implied = f"mixed{11 - top}"
    named = given.get("unfreeze_from", from_file.get("unfreeze_from"))
    if named is not None and named != implied and ("unfreeze_from" in given or "unfreeze_top" not in given):
        raise SettingError(f"--unfreeze-top {top} means --unfreeze-from {implied}, but --unfreeze-from "
                           f"{named} was given too; give one of them.")
    return settings.replace(unfreeze_from=implied)


def check_combination(command: str, s: Settings) -> None:
    """Settings that are fine alone but not together."""
    d, r = s.data, s.recipe
    if command != "cv" and d.val_split + d.test_split >= 1.0:
        raise SettingError(f"--val-split plus --test-split must be below 1, got {d.val_split + d.test_split:g}.")
    if command == "train" and s.scratch.arch:
        if r.weights != "none":
            raise SettingError(f"--arch {s.scratch.arch} builds a network from scratch, so it needs --weights none "
                               "(pretrained weights exist for the default Inception-v3 recipe, without --arch).")
        if s.scratch.width != 1.0 and s.scratch.arch not in WIDTH_ARCHITECTURES:
            raise SettingError(f"--width applies to {' and '.join(WIDTH_ARCHITECTURES)}, not to {s.scratch.arch}.")
        return
    if r.image_size < MIN_IMAGE_SIZE:
        raise SettingError(f"--image-size must be at least {MIN_IMAGE_SIZE} for InceptionV3, got {r.image_size}.")
    policy = resolve_policy(r.augment, r.aug)
    if r.aug and r.augment == "none":
        raise SettingError("--aug overrides a parameter of an augmentation policy: pass --augment light, default "
                           "or strong too.")
    if r.views and not policy:
        raise SettingError("--aug-views needs an augmentation: pass --augment light, default or strong.")
    if r.fine_tune_augment == "online" and not policy:
        raise SettingError("--fine-tune-augment online needs an augmentation: pass --augment light, default or "
                           "strong.")
    if r.fine_tune_augment == "views" and not (r.views and policy):
        raise SettingError("--fine-tune-augment views needs cached views: pass --augment with --aug-views K "
                           "(K >= 1).")
    check_class_weight_syntax(r.class_weight)
    try:
        source_blocks(r.feature_block)
    except ValueError as exc:
        raise SettingError(f"The 'feature_block' setting (--feature-block): {exc}.") from None
    if command == "train" and s.run.resume and not s.run.out:
        raise SettingError("--resume needs --out: the run folder of the interrupted run.")
    if s.study.timeout is not None:
        timeout_seconds(s.study.timeout)
    if command == "lr_find" and not s.sweep.min_lr < s.sweep.max_lr:
        raise SettingError(f"--min-lr must be below --max-lr (got {s.sweep.min_lr:g} and {s.sweep.max_lr:g}).")
    if command == "lr_find" and s.sweep.plot is not None and Path(s.sweep.plot).suffix.lower() not in PLOT_SUFFIXES:
        raise SettingError(f"The lr-find plot ({TABLE['plot'][1].cli_flag('plot')}) must end in "
                           f"{', '.join(PLOT_SUFFIXES)}; got {s.sweep.plot!r} instead.")


def timeout_seconds(value: str) -> float:
    """--timeout as seconds: 90, 90s, 10m or 2h."""
    text = str(value).strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600}.get(text[-1:], None)
    try:
        seconds = float(text[:-1] if scale else text) * (scale or 1)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise SettingError(f"--timeout takes seconds or a duration such as 30s, 10m or 2h; got {value!r} instead.")
    return seconds


def check_class_weight_syntax(value: str | None) -> None:
    if value is None or value == "auto":
        return
    for item in value.split(","):
        name, sep, weight = item.partition("=")
        try:
            ok = bool(sep and name.strip()) and float(weight) > 0
        except ValueError:
            ok = False
        if not ok:
            raise SettingError(f"--class-weight takes auto or NAME=WEIGHT pairs (positive weights), got '{item}'.")


# --- config files


def read_config_file(path: str) -> dict:
    """A JSON, YAML or TOML file of settings (flat, or nested by group) as a flat dict.

    A run's own config.json (it has a `resolved` section) replays the run, not where it was written:
    its out, overwrite and resume are left to the new call. Numbers written as text (YAML 1.1 reads
    `1e-3` as a string) are read as numbers.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"The config file {path} does not exist.")
    suffix = file.suffix.lower()
    try:
        text = file.read_text(encoding="utf-8")
        if suffix == ".json":
            content = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            content = yaml.safe_load(text)
        elif suffix == ".toml":
            import tomllib

            content = tomllib.loads(text)
        else:
            raise UserError(f"The config file {path} must end in .json, .yaml, .yml or .toml.")
    except UserError:
        raise
    except Exception as exc:  # each parser has its own error types
        raise UserError(f"The config file {path} could not be read ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}).") from None
    if not isinstance(content, dict):
        raise UserError(f"The config file {path} must hold a mapping of settings, not {type(content).__name__}.")
    flat: dict = {}
    for key, value in content.items():
        if key in RECORDED:
            continue
        if key in COMMANDS["train"]["groups"] + ("cv", "sweep") and isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    unknown = sorted(k for k in flat if k not in TABLE)
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(TABLE), n=1)
        raise SettingError(f"The config file {path} names '{unknown[0]}', which is not a setting"
                           + (f"; did you mean '{close[0]}'?" if close else "."))
    if "resolved" in content:  # a run's record
        flat = {k: v for k, v in flat.items() if k not in NOT_REPLAYED}
    for name, value in flat.items():
        if isinstance(value, str) and TABLE[name][1].kind in ("int", "float"):
            flat[name] = TABLE[name][1].parse(name, value)
    return flat


# --- signatures and docstrings of the API functions


def api_signature(command: str, leading: list[inspect.Parameter]) -> inspect.Signature:
    """`leading` parameters, then every setting of `command` (keyword-only, with its default)."""
    params = list(leading)
    taken = {p.name for p in params}
    for name in command_settings(command):
        if name not in taken:
            params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=DEFAULTS.get(name)))
    return inspect.Signature(params)


def documented(command: str, leading: list[inspect.Parameter]):
    """Give an API function the signature and Args of `command`'s settings."""
    def decorate(fn):
        fn.__signature__ = api_signature(command, leading)
        args = "\n".join(f"        {name}: {TABLE[name][1].help} Default: {DEFAULTS.get(name)!r}."
                         for name in command_settings(command) if name != "data")
        fn.__doc__ = (fn.__doc__ or "").rstrip() + "\n\n    Settings (checked before any image is read):\n" + args + "\n"
        return fn
    return decorate
