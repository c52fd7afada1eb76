"""Every command has a twin in the Python API that takes the command's inputs and gives its answer: the same
result, or the same one-sentence refusal. Each test uses the cheapest inputs that show it: a refusal before
any image is read, or a dozen small pictures on the narrow network."""

import inspect
import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer.main

import inceptune
from conftest import NARROW_WEIGHTS, SHARED_WEIGHTS, make_color_dataset, make_image, one_sentence_error, run_cli
from inceptune.cli import app
from inceptune.errors import UserError
from inceptune.features.files import read_features_file
from inceptune.settings import command_settings

# The API's name for each command.
TWINS = {"train": "train", "cv": "cross_validate", "tune": "tune", "audit": "audit", "lr-find": "lr_find",
         "predict": "predict", "evaluate": "evaluate", "explain": "explain", "build": "build", "export": "export",
         "serve": "serve", "features": "extract_features_file", "fit-features": "fit_features", "similar": "similar",
         "demo": "demo", "cache info": "cache_info", "cache prune": "prune_cache"}
PACKAGE = Path(inceptune.__file__).parent
PRINTING = {"as_json", "as_csv", "help_all"}  # how the command prints what the API returns (or its settings)
# The API's word where the command's differs: a unit (bytes, not MiB), and days spelled out.
RENAMED = {("serve", "max_upload_mb"): "max_upload_bytes", ("cache prune", "older_than"): "older_than_days"}


def refused_alike(call, *args: str) -> str:
    """The API's UserError and the command's error for the same inputs: one sentence, the same one."""
    with pytest.raises(UserError) as refused:
        call()
    assert f"error: {' '.join(str(refused.value).split())}" in one_sentence_error(run_cli(*args))
    return str(refused.value)


def cli_commands() -> dict:
    """Command name ("cache info" for a subcommand) -> its click command."""
    found = {}
    for name, command in typer.main.get_command(app).commands.items():
        subcommands = getattr(command, "commands", None)
        found.update({f"{name} {sub}": c for sub, c in subcommands.items()} if subcommands else {name: command})
    return found


def keywords_of(name: str, api) -> set[str]:
    """The keywords the API twin of command `name` takes, those it passes on included."""
    parameters = inspect.signature(api).parameters
    taken = {p.name for p in parameters.values() if p.kind != p.VAR_KEYWORD}
    if any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
        if name == "serve":  # the rest are the app's settings
            taken |= set(inspect.signature(vars(sys.modules[api.__module__])["create_app"]).parameters)
        else:  # the settings table's, as the command's options are
            taken |= set(command_settings(name.replace("-", "_")))
    return taken


def test_every_command_has_a_twin_that_takes_its_arguments_in_order_and_its_options_by_name():
    commands = cli_commands()
    assert set(commands) == set(TWINS)
    for name, command in commands.items():
        twin = TWINS[name]
        # A module inceptune/NAME.py would take the function's place once imported (`inceptune.demo` did).
        assert not (PACKAGE / f"{twin}.py").exists() and not (PACKAGE / twin).is_dir(), twin
        api = getattr(inceptune, twin)
        assert inspect.isfunction(api), name
        positional = [p for p in inspect.signature(api).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        arguments = [p for p in command.params if p.param_type_name == "argument"]
        assert len(arguments) <= len(positional), name
        options = {RENAMED.get((name, p.name), p.name) for p in command.params if p.param_type_name == "option"}
        assert options - PRINTING <= keywords_of(name, api), name


@pytest.mark.parametrize("command", ["train", "cv", "tune", "audit", "lr-find"])
def test_the_settings_commands_take_a_config_file_and_settings(command, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"data": str(tmp_path / "nowhere"), "weights": "none"}))
    api = getattr(inceptune, TWINS[command])
    said = refused_alike(lambda: api(config=str(config), image_size=32), command, "--config", str(config),
                         "--image-size", "32")
    assert "--image-size" in said


@pytest.mark.skipif(not SHARED_WEIGHTS.is_file(), reason=f"needs {SHARED_WEIGHTS}")
def test_predict_takes_imagenet_as_the_command_does(tmp_path):
    # As tests/test_imagenet.py: the shared weights lack the 1000-way classifier, which only the ImageNet route
    # asks for (a run folder named "imagenet" would be "not a finished inceptune run").
    photo = str(make_image(tmp_path / "photo.jpg"))
    said = refused_alike(lambda: inceptune.predict("imagenet", [photo], weights=str(SHARED_WEIGHTS)),
                         "predict", "imagenet", photo, "--weights", str(SHARED_WEIGHTS))
    assert "no ImageNet classifier top" in said


# The tests that read `colours` take turns on one worker, which builds it once.
COLOURS = pytest.mark.xdist_group("api-twins-colours")


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    """A features file of 12 small pictures (two colours) on the narrow network, and a classifier fitted on it,
    both through the API."""
    root = tmp_path_factory.mktemp("twins")
    data = make_color_dataset(root / "data", per_class=6)
    inceptune.extract_features_file(str(data), str(root / "colours.parquet"), layer="mixed9", image_size=75,
                                    weights=str(NARROW_WEIGHTS), cache_dir=str(root / "cache"))
    fitted = inceptune.fit_features(str(root / "colours.parquet"), "logreg", out=str(root / "model"), folds=2)
    flags = ["--layer", "mixed9", "--image-size", "75", "--weights", str(NARROW_WEIGHTS), "--cache-dir",
             str(root / "cache")]  # the same, as the command takes them
    return SimpleNamespace(root=root, data=data, file=root / "colours.parquet", model=root / "model",
                           fitted=fitted, flags=flags)


@COLOURS
def test_features_writes_the_same_rows_from_the_api_and_the_command(colours, tmp_path):
    proc = run_cli("features", str(colours.data), "--out", str(tmp_path / "again.parquet"), *colours.flags)
    assert proc.returncode == 0, proc.stderr
    ours, theirs = read_features_file(colours.file), read_features_file(tmp_path / "again.parquet")
    assert ours.paths == theirs.paths and ours.labels == theirs.labels and ours.hashes == theirs.hashes
    assert (ours.vectors == theirs.vectors).all() and len(ours.paths) == 12


@COLOURS
def test_fit_features_gives_the_same_result(colours, tmp_path):
    proc = run_cli("fit-features", str(colours.file), "--out", str(tmp_path / "model"), "--folds", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed.pop("out") == str(tmp_path / "model")
    assert printed == {k: v for k, v in colours.fitted.items() if k != "out"}


@COLOURS
def test_predict_takes_a_fit_features_model_as_the_command_does(colours):
    photos = [str(colours.data / "red" / "red_00.jpg"), str(colours.data / "blue")]
    proc = run_cli("predict", str(colours.model), *photos, "--top", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    answered = inceptune.predict(colours.model, photos, top=2)
    assert json.loads(proc.stdout) == answered and len(answered) == 7
    assert {t["label"] for t in answered[0]["top"]} == {"red", "blue"}


def test_predict_refuses_an_unknown_engine_alike(tmp_path):
    photo = str(make_image(tmp_path / "photo.jpg"))
    refused_alike(lambda: inceptune.predict(str(tmp_path), [photo], engine="spark"),
                  "predict", str(tmp_path), photo, "--engine", "spark")


@COLOURS
def test_similar_finds_the_same_neighbours(colours):
    query = str(colours.data / "blue" / "blue_03.jpg")
    proc = run_cli("similar", str(colours.file), query, "--k", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    found = inceptune.similar(str(colours.file), query, k=3)
    assert json.loads(proc.stdout) == found and found[0]["path"] == query


@COLOURS
def test_cache_info_and_prune_read_and_reclaim_the_same(colours, tmp_path):
    cache = str(colours.root / "cache")
    proc = run_cli("cache", "info", "--cache-dir", cache, "--json")
    assert proc.returncode == 0, proc.stderr
    spaces = inceptune.cache_info(cache)
    assert json.loads(proc.stdout) == spaces and spaces[0]["images"] == 12
    for copy in ("api", "cli"):
        shutil.copytree(cache, tmp_path / copy)
    removed = inceptune.prune_cache(str(tmp_path / "api"), older_than_days=0)
    proc = run_cli("cache", "prune", "--cache-dir", str(tmp_path / "cli"), "--older-than", "0")
    assert proc.returncode == 0, proc.stderr
    assert removed["spaces"] == [spaces[0]["key"]]
    assert proc.stdout.strip() == (f"Removed 1 space(s) and {removed['files']} file(s): "
                                   f"{removed['bytes'] / 2**20:.1f} MiB.")
    assert inceptune.cache_info(str(tmp_path / "api")) == inceptune.cache_info(str(tmp_path / "cli")) == []


def test_build_gives_the_same_counts_and_refusals():
    args = ("mini-inception", "--input-shape", "32,32,1", "--classes", "3", "--width", "0.25")
    proc = run_cli("build", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    info = inceptune.build("mini-inception", input_shape="32,32,1", classes=3, width=0.25)
    assert json.loads(proc.stdout) == info and info["input_shape"] == [32, 32, 1]
    assert inceptune.build("mini-inception", input_shape=(32, 32, 1), classes=3, width=0.25) == info
    refused_alike(lambda: inceptune.build("mini-inception", input_shape="32x32x1"),
                  "build", "mini-inception", "--input-shape", "32x32x1")
    refused_alike(lambda: inceptune.build("single-module", input_shape="48,48,1", classes=7, aux=True),
                  "build", "single-module", "--input-shape", "48,48,1", "--classes", "7", "--aux")


def test_evaluate_refuses_what_is_not_a_run_alike(tmp_path):
    assert "not a finished inceptune run" in refused_alike(lambda: inceptune.evaluate(str(tmp_path)),
                                                           "evaluate", str(tmp_path))


def test_explain_refuses_an_unknown_block_alike(tmp_path):
    photo = str(make_image(tmp_path / "photo.jpg"))
    refused_alike(lambda: inceptune.explain(str(tmp_path), [photo], block="mixed12"),
                  "explain", str(tmp_path), photo, "--block", "mixed12")


def test_export_refuses_what_is_not_a_run_alike(tmp_path):
    refused_alike(lambda: inceptune.export(str(tmp_path), "onnx"), "export", str(tmp_path))
    refused_alike(lambda: inceptune.export(str(tmp_path), "onnx", quantize="int4"),
                  "export", str(tmp_path), "--quantize", "int4")


def test_serve_refuses_an_open_port_beyond_this_machine_alike(tmp_path, monkeypatch):
    monkeypatch.delenv("INCEPTUNE_API_KEY", raising=False)
    said = refused_alike(lambda: inceptune.serve(str(tmp_path), host="0.0.0.0"), "serve", str(tmp_path),
                         "--host", "0.0.0.0")
    assert "--no-auth" in said
