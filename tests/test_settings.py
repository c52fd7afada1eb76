"""Settings: one table of defaults and allowed values, checked before any image is read, through every door."""

from __future__ import annotations

import inspect
import json

import pytest

import inceptune
from conftest import one_sentence_error, run_cli
from inceptune.settings import DEFAULTS, TABLE, SettingError, command_settings, resolve

NOWHERE = "/nonexistent/photos"  # reading it would fail with "does not exist": a settings error must come first
COMMANDS = {"train": "train", "cv": "cv", "lr_find": "lr-find"}
API = {"train": lambda **kw: inceptune.train(**kw), "cv": lambda **kw: inceptune.cross_validate(**kw),
       "lr_find": lambda **kw: inceptune.lr_find(**kw)}


def _command_of(name: str) -> str:
    return next(c for c in COMMANDS if name in command_settings(c))


def _wrong_type(spec):
    return {"int": "three", "float": "fast", "bool": "yes", "str": 3, "path": 3, "ints": 3, "strs": 3}[spec.kind]


def _wrong_value(spec):
    """A value of the right type that the setting refuses, or None when every value of its type is allowed."""
    if spec.choices:
        return 99 if isinstance(spec.choices[0], int) else "bogus"
    if spec.low is not None:
        below = spec.low if spec.low_open else spec.low - 1
        value = [int(below)] if spec.kind == "ints" else below
        return int(value) if spec.kind == "int" else value
    if spec.high is not None:
        return spec.high + 1
    if spec.kind == "path":
        return ""
    return None


def _cli_text(spec):
    """Text for the flag that the setting refuses, or None when it takes any text (bools, free strings)."""
    if spec.kind in ("int", "float"):
        return "abc"
    if spec.kind == "ints":
        return ["0"]
    if spec.choices:
        return "bogus"
    if spec.kind == "path":
        return ""
    return None


CASES = [(name, kind) for name in TABLE for kind in ("type", "value")
         if kind == "type" or _wrong_value(TABLE[name][1]) is not None]


@pytest.mark.parametrize("name, kind", CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_a_wrong_setting_fails_in_the_api_and_the_cli_before_any_image_is_read(name, kind, tmp_path):
    spec = TABLE[name][1]
    command = _command_of(name)
    bad = _wrong_type(spec) if kind == "type" else _wrong_value(spec)
    given = {"data": NOWHERE, name: bad} if name != "data" else {"data": bad}
    with pytest.raises(SettingError) as error:
        API[command](**given)
    message = str(error.value)
    assert f"'{name}'" in message and spec.cli_flag(name) in message and repr(bad) in message, message

    # The same through the command line: as the flag's text, or in a --config file where no text is wrong.
    text = _cli_text(spec) if kind == "type" else None
    if text is not None:
        flag = [spec.cli_flag(name), text] if not isinstance(text, list) else \
            [a for t in text for a in (spec.cli_flag(name), t)]
        args = [text] if name == "data" else [NOWHERE, *flag]
        shown = repr(text if not isinstance(text, list) else [int(t) for t in text])
    else:
        config = tmp_path / "settings.json"
        config.write_text(json.dumps({name: bad}))
        args = ["--config", str(config)] + ([] if name == "data" else [NOWHERE])
        shown = repr(bad)
    message = one_sentence_error(run_cli(COMMANDS[command], *args))
    assert spec.cli_flag(name) in message and shown in message, message


def test_every_setting_has_one_default_that_is_valid_and_a_help_text():
    for name, (group, spec) in TABLE.items():
        assert spec.help.strip(), name
        if name != "data":
            assert spec.check(name, DEFAULTS[name]) == DEFAULTS[name], name
    assert {name for name in TABLE} == set(command_settings("train")) | set(command_settings("cv")) | \
        set(command_settings("lr_find"))


def test_the_api_signatures_and_docstrings_list_every_setting_with_its_default():
    for function, command in ((inceptune.train, "train"), (inceptune.cross_validate, "cv"),
                              (inceptune.lr_find, "lr_find")):
        parameters = inspect.signature(function).parameters
        assert list(parameters)[:2] == ["data", "config"]
        for name in command_settings(command):
            if name != "data":
                assert parameters[name].default == DEFAULTS[name], (command, name)
                assert f"        {name}: " in function.__doc__, (command, name)
    assert inspect.signature(inceptune.train).parameters["epochs"].default == 20


def test_settings_a_recipe_does_not_use_are_refused_not_dropped():
    with pytest.raises(SettingError, match=r"'augment' setting \(--augment\) is not used by train --arch"):
        resolve("train", {"data": NOWHERE, "arch": "googlenet", "weights": "none", "augment": "light"})
    with pytest.raises(SettingError, match=r"'width' setting \(--width\) is not used by the pretrained recipe"):
        resolve("train", {"data": NOWHERE, "width": 0.5})
    with pytest.raises(SettingError, match=r"'resume' setting \(--resume\) is not used by cv"):
        resolve("cv", {"data": NOWHERE, "resume": True})
    with pytest.raises(SettingError, match=r"'epochs' setting \(--epochs\) is not used by lr-find"):
        resolve("lr_find", {"data": NOWHERE, "epochs": 3})
    # A default value is harmless (a run's config.json records every setting).
    assert resolve("train", {"data": NOWHERE, "arch": "googlenet", "weights": "none", "augment": "none"})
    for kw, message in (({"track": "mlflow", "arch": "googlenet"}, "needs --weights none"),
                        ({"folds": 3}, "'folds' is not a setting of train"),
                        ({"lr": 0.1}, "did you mean 'learning_rate'")):
        with pytest.raises(SettingError, match=message):
            resolve("train", {"data": NOWHERE, **kw})


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".toml"])
def test_a_config_file_sets_what_it_names_and_keywords_override_it(tmp_path, suffix):
    content = {".json": '{"recipe": {"epochs": 3, "head_units": [64]}, "seed": 7}',
               ".yaml": "recipe:\n  epochs: 3\n  head_units: [64]\nseed: 7\n",
               ".toml": "seed = 7\n[recipe]\nepochs = 3\nhead_units = [64]\n"}[suffix]
    config = tmp_path / f"settings{suffix}"
    config.write_text(content)
    s = resolve("train", {"data": NOWHERE}, str(config))
    assert (s.recipe.epochs, s.recipe.head_units, s.data.seed) == (3, (64,), 7)
    s = resolve("train", {"data": NOWHERE, "epochs": 5}, str(config))
    assert (s.recipe.epochs, s.data.seed, s.recipe.fine_tune_epochs) == (5, 7, DEFAULTS["fine_tune_epochs"])
    # --unfreeze-from given here wins over a file's --unfreeze-top, which would name another block.
    top = tmp_path / "top.json"
    top.write_text('{"unfreeze_top": 2}')
    assert resolve("train", {"data": NOWHERE}, str(top)).recipe.unfreeze_from == "mixed9"
    s = resolve("train", {"data": NOWHERE, "unfreeze_from": "mixed7"}, str(top))
    assert (s.recipe.unfreeze_from, s.recipe.unfreeze_top) == ("mixed7", None)


def test_a_runs_config_json_replays_the_recipe_not_where_the_run_was_written(tmp_path, capsys):
    config = tmp_path / "config.json"
    record = {"data": {"data": NOWHERE, "test_split": 0.3}, "recipe": {"epochs": 4, "learning_rate": "1e-3"},
              "scratch": {"channels": 1}, "run": {"resume": True, "overwrite": True, "out": str(tmp_path / "run")},
              "resolved": {"image_size": 299}, "versions": {}}
    config.write_text(json.dumps(record))
    s = resolve("train", {}, str(config))
    assert (s.recipe.epochs, s.recipe.learning_rate, s.data.test_split) == (4, 1e-3, 0.3)
    assert (s.run.out, s.run.overwrite, s.run.resume, s.scratch.channels) == (None, False, False, 3)
    assert "channels left out (train does not use it)" in " ".join(capsys.readouterr().err.split())
    # cv reads the same record: what it has no use for is left out, and it says which.
    s = resolve("cv", {"out": str(tmp_path / "cv")}, str(config))
    assert (s.recipe.epochs, s.data.test_split, s.run.out) == (4, DEFAULTS["test_split"], str(tmp_path / "cv"))
    assert "channels, test_split left out (cv does not use them)" in " ".join(capsys.readouterr().err.split())
    record["scratch"]["arch"] = "googlenet"
    config.write_text(json.dumps(record))
    with pytest.raises(SettingError, match="is a run of --arch googlenet"):
        resolve("cv", {}, str(config))


def test_config_file_mistakes_are_one_sentence(tmp_path):
    (tmp_path / "typo.yaml").write_text("epoks: 3\n")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "broken.toml").write_text("epochs = \n")
    (tmp_path / "settings.ini").write_text("epochs=3")
    for name, message in (("typo.yaml", "names 'epoks', which is not a setting; did you mean 'epochs'?"),
                          ("list.json", "must hold a mapping of settings, not list"),
                          ("broken.toml", "could not be read (TOMLDecodeError"),
                          ("settings.ini", "must end in .json, .yaml, .yml or .toml"),
                          ("missing.json", "does not exist")):
        assert message in one_sentence_error(run_cli("train", NOWHERE, "--config", str(tmp_path / name))), name


def test_flags_that_are_not_given_leave_the_config_file_alone(tmp_path):
    (tmp_path / "bad.json").write_text('{"epochs": -1, "augment": "light"}')
    # The file's bad epochs is checked; a flag overrides it; untouched flags override nothing.
    assert "got -1 instead" in one_sentence_error(run_cli("train", NOWHERE, "--config", str(tmp_path / "bad.json")))
    message = one_sentence_error(run_cli("train", NOWHERE, "--config", str(tmp_path / "bad.json"), "--epochs", "2"))
    assert "does not exist" in message  # the settings passed; reading the data is what failed


def test_combinations_are_checked_with_the_settings():
    for kw, message in (({"aug_views": 3}, "--aug-views needs an augmentation"),
                        ({"fine_tune_augment": "online"}, "--fine-tune-augment online needs an augmentation"),
                        ({"augment": "light", "aug": ("spin=3",)}, "--aug takes KEY=VALUE"),
                        ({"aug": ("zoom=0.1",)}, "--aug overrides a parameter of an augmentation policy"),
                        ({"class_weight": "wasps"}, "--class-weight takes auto or NAME=WEIGHT"),
                        ({"val_split": 0.6, "test_split": 0.5}, "--val-split plus --test-split must be below 1"),
                        ({"resume": True}, "--resume needs --out"),
                        ({"image_size": 32}, "--image-size must be at least 75"),
                        ({"unfreeze_top": 2, "unfreeze_from": "mixed5"}, "give one of them"),
                        ({"seed": 2**32}, "must be an int in the range")):
        with pytest.raises(inceptune.UserError, match=message):
            resolve("train", {"data": NOWHERE, **kw})
    assert resolve("train", {"data": NOWHERE, "unfreeze_top": 3}).recipe.unfreeze_from == "mixed8"
    with pytest.raises(SettingError, match="--min-lr must be below --max-lr"):
        resolve("lr_find", {"data": NOWHERE, "min_lr": 1.0, "max_lr": 0.1})
    with pytest.raises(SettingError, match=r"The lr-find plot \(--out\) must end in .png, .svg, .pdf; got 'runs'"):
        resolve("lr_find", {"data": NOWHERE, "plot": "runs"})
