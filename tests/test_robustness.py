"""Bad inputs against every command, property-based loading, SIGKILL at several points, untrusted models."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from inceptune.vocabulary.sources import SEARCH_KINDS
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import (
    NARROW_WEIGHTS,
    SHARED_WEIGHTS,
    cached_entries,
    make_color_dataset,
    one_sentence_error,
    requires_shared,
    run_cli,
)
from corpus import cases, write_corpus
from inceptune.data.images import decode_image, load_image
from inceptune.data.scan import scan_dataset
from inceptune.errors import ImageError, UserError


def _ends_well(proc) -> None:
    """Exit 0, or exit 2 with one sentence; never a traceback."""
    assert proc.returncode in (0, 2), (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    if proc.returncode == 2:
        one_sentence_error(proc)


# --- the loader, case by case and by property


@pytest.mark.parametrize("name", sorted(cases()))
def test_every_corpus_file_loads_or_is_skipped_with_its_reason(name, tmp_path):
    path, expected = write_corpus(tmp_path)[name]
    if expected == "loads":
        image = load_image(path)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    else:
        with pytest.raises(ImageError) as caught:
            load_image(path)
        assert caught.value.reason.startswith(expected)


def _check_decode(data: bytes) -> None:
    try:
        image = decode_image(data, max_pixels=4_000_000)
    except ImageError as exc:
        assert exc.reason  # skipped, with a reason
    else:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash_the_loader(data):
    _check_decode(data)


_SEED_IMAGES = [c for name, (c, expected) in cases().items() if expected == "loads" and c]


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_SEED_IMAGES),
       st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=12),
       st.floats(0.05, 1.0))
def test_mutated_real_images_never_crash_the_loader(seed, flips, keep):
    data = bytearray(seed[: max(1, int(len(seed) * keep))])
    for where, value in flips:
        data[int(where * len(data))] = value
    _check_decode(bytes(data))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(list(cases())),
                          st.booleans()), min_size=1, max_size=8))
def test_the_scanner_accounts_for_every_file(tmp_path_factory, files):
    root = tmp_path_factory.mktemp("scan")
    contents = cases()
    written = set()
    for i, (label, name, truncate) in enumerate(files):
        content = contents[name][0]
        path = root / label / f"{i}_{name}"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content[: len(content) // 3] if truncate else content)
        written.add(str(path))
    try:
        result = scan_dataset(root)
    except UserError as exc:
        assert str(exc)  # e.g. fewer than two classes with images: one sentence
        return
    seen = {r.path for r in result.records} | {s.path for s in result.skipped}
    assert seen == written  # loaded or skipped with a reason, nothing lost
    assert all(s.reason for s in result.skipped)


# --- every command against the corpus


@pytest.fixture(scope="module")
def messy(tmp_path_factory) -> Path:
    """Two learnable classes, with every corpus file mixed in, hidden files, a nested folder and a symlink loop."""
    root = tmp_path_factory.mktemp("messy")
    data = make_color_dataset(root / "data", per_class=8)
    write_corpus(data / "red" / "odd")  # nested folder of odd files inside a class
    (data / "blue" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (data / "blue" / "._blue_00.jpg").write_bytes(b"\x00\x05\x16\x07")
    (data / "empty class").mkdir()
    os.symlink(data / "blue", data / "blue" / "loop")
    return data


@pytest.fixture(scope="module")
def messy_run(messy, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "messy"
    proc = run_cli("train", str(messy), "--out", str(out), "--weights", str(NARROW_WEIGHTS), "--image-size", "75",
                   "--epochs", "5", "--fine-tune-epochs", "1", "--batch-size", "8")
    _ends_well(proc)
    assert proc.returncode == 0
    return out, proc


def test_train_on_the_messy_folder_skips_and_reports_every_bad_file(messy_run):
    run, proc = messy_run
    summary = json.loads((run / "dataset.json").read_text())
    skipped = {Path(s["path"]).name: s["reason"] for s in summary["skipped"]}
    for name, (_, expected) in cases().items():
        if expected == "loads":
            assert name not in skipped
        else:
            assert skipped[name].startswith(expected), name
            assert name in proc.stderr
    counts = summary["counts"]
    loaded = sum(sum(split.values()) for split in counts.values())
    assert loaded == 16 + sum(1 for _, e in cases().values() if e == "loads")
    assert any("empty class" in w for w in summary["warnings"])
    assert skipped[".DS_Store"] and skipped["._blue_00.jpg"]  # hidden files: skipped, with a reason


@pytest.mark.slow  # every corpus file through four commands, cv included: about 45 s
def test_predict_evaluate_explain_and_cv_on_the_corpus(messy, messy_run, tmp_path):
    run, _ = messy_run
    corpus = write_corpus(tmp_path / "corpus")
    proc = run_cli("predict", str(run), str(tmp_path / "corpus"), "--json")
    _ends_well(proc)
    results = {Path(r["path"]).name: r for r in json.loads(proc.stdout)}
    for name, (_, expected) in corpus.items():
        assert ("error" in results[name]) == (expected != "loads"), name
    bad_only = [str(p) for p, e in corpus.values() if e != "loads"]
    assert "None of the images could be read" in one_sentence_error(run_cli("predict", str(run), *bad_only))
    _ends_well(run_cli("evaluate", str(run), str(messy)))
    _ends_well(run_cli("explain", str(run), str(tmp_path / "corpus"), "--out", str(tmp_path / "cams")))
    _ends_well(run_cli("cv", str(messy), "--folds", "2", "--out", str(tmp_path / "cv"), "--weights",
                       str(NARROW_WEIGHTS), "--image-size", "75", "--epochs", "2", "--fine-tune-epochs", "0"))
    assert (tmp_path / "cv" / "cv.json").is_file()


def test_evaluation_data_with_other_classes(messy_run, tmp_path):
    run, _ = messy_run
    other = make_color_dataset(tmp_path / "other", per_class=2, classes=("red", "green"))
    assert "class 'green', which the model does not know" in one_sentence_error(
        run_cli("evaluate", str(run), str(other)))
    shutil.rmtree(other / "green")
    proc = run_cli("evaluate", str(run), str(other), "--json")
    _ends_well(proc)
    assert proc.returncode == 0 and "has no images of class blue" in " ".join(proc.stderr.split())


def test_dataset_level_mistakes_are_one_sentence_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    single = make_color_dataset(tmp_path / "single", per_class=3, classes=("red",))
    bad_only = tmp_path / "bad_only"
    for label in ("a", "b"):
        (bad_only / label).mkdir(parents=True)
        (bad_only / label / "x.jpg").write_bytes(b"")
    for data in (tmp_path / "empty", single, bad_only, tmp_path / "missing"):
        proc = run_cli("train", str(data), "--out", str(tmp_path / "run"), "--weights", "none")
        _ends_well(proc)
        assert proc.returncode == 2
    assert not (tmp_path / "run").exists()


def test_unreadable_files_are_skipped_when_not_running_as_root(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their permissions; checked as a normal user")
    data = make_color_dataset(tmp_path / "data", per_class=3)
    locked = data / "red" / "red_00.jpg"
    locked.chmod(0)
    result = scan_dataset(data)
    assert [s.reason for s in result.skipped if s.path == str(locked)][0].startswith("cannot read")


# --- limits and disk


def test_the_pixel_limit_is_configurable(tmp_path):
    data = make_color_dataset(tmp_path / "data", per_class=3)
    Image.new("RGB", (400, 300)).save(data / "red" / "big.png")
    skipped = {Path(s.path).name: s.reason for s in scan_dataset(data, max_pixels=100_000).skipped}
    assert skipped["big.png"].startswith("too large: 400x300")
    assert "big.png" not in {Path(s.path).name for s in scan_dataset(data).skipped}


def test_an_unwritable_output_folder_is_one_sentence(tmp_path):
    data = make_color_dataset(tmp_path / "data", per_class=3)
    (tmp_path / "file").write_text("")
    assert "is a file" in one_sentence_error(run_cli("train", str(data), "--out", str(tmp_path / "file"),
                                                     "--weights", "none"))
    assert "Cannot write" in one_sentence_error(run_cli("train", str(data), "--out", "/proc/inceptune-run",
                                                        "--weights", "none"))


@requires_shared
def test_a_full_disk_is_one_sentence_and_keeps_the_features(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("needs permission to mount a small tmpfs (root in CI) to fill a disk")
    try:
        data = make_color_dataset(tmp_path / "data", per_class=4)
        cache = tmp_path / "cache"
        args = ["train", str(data), "--weights", str(SHARED_WEIGHTS), "--image-size", "75", "--epochs", "2",
                "--fine-tune-epochs", "0"]
        env = {"INCEPTUNE_CACHE": str(cache)}
        out = one_sentence_error(run_cli(*args, "--out", str(small / "run"), env=env))
        assert "No space left on device" in out and "finished work is kept" in out
        assert not list(small.rglob("*.tmp*"))  # no half-written file left behind
        entries = cached_entries(cache)
        # every feature source the search may choose, complete: 8 images x the search's kinds
        assert len(entries) == 8 * len(SEARCH_KINDS) and all(e is not None and e.ndim == 1 for e in entries.values())
        again = run_cli(*args, "--out", str(tmp_path / "run"), env=env)
        assert again.returncode == 0, again.stderr
        assert json.loads((tmp_path / "run" / "metrics.json").read_text())["phase1"]["features"]["computed"] == 0
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)


# --- SIGKILL: nothing corrupt left behind, and a rerun finishes


# --- untrusted models


def _lambda_model(path: Path) -> None:
    import keras

    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Lambda(lambda x: x[:, :1, 0, 0] * 0 + 0.25, output_shape=(1,))(inputs)
    keras.Model(inputs, outputs).save(path)


@requires_shared
def test_a_lambda_model_is_refused_unless_unsafe(trained_run, small_hymenoptera, tmp_path):
    run = tmp_path / "suspicious"
    shutil.copytree(trained_run.run, run)
    _lambda_model(run / "model.keras")
    image = str(sorted((small_hymenoptera / "val" / "bees").glob("*.jpg"))[0])
    for command in (["predict", str(run), image], ["evaluate", str(run)], ["explain", str(run), image]):
        assert "refuses to load it; pass --unsafe" in one_sentence_error(run_cli(*command))
    proc = run_cli("predict", str(run), image, "--unsafe", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["probabilities"]["bees"] == pytest.approx(0.25)


def test_a_damaged_model_file_is_one_sentence(trained_run, tmp_path):
    run = tmp_path / "damaged"
    shutil.copytree(trained_run.run, run)
    data = (run / "model.keras").read_bytes()
    (run / "model.keras").write_bytes(data[: len(data) // 2])
    assert "could not be read as a Keras model" in one_sentence_error(
        run_cli("predict", str(run), str(run / "labels.json")))


def test_pickled_arrays_are_refused(tmp_path):
    np.save(tmp_path / "X.npy", np.array([{"a": 1}] * 4, dtype=object), allow_pickle=True)
    np.save(tmp_path / "y.npy", np.arange(4))
    out = one_sentence_error(run_cli("train", str(tmp_path), "--arch", "mini-inception", "--weights", "none"))
    assert "could not be read as a plain numpy array" in out


@requires_shared
def test_a_run_folder_that_disagrees_with_itself_is_one_sentence(own_flowers_run, small_flowers):
    """labels.json or config.json that is not JSON, or labels for another number of classes than the model
    answers: one sentence and exit 2 from predict, never a traceback or an IndexError."""
    run = own_flowers_run.run
    image = str(sorted(small_flowers.rglob("*.jpg"))[0])
    labels = json.loads((run / "labels.json").read_text())
    (run / "labels.json").write_text(json.dumps({**labels, "classes": labels["classes"][:3]}))
    message = one_sentence_error(run_cli("predict", str(run), image, "--runtime", "keras"))
    assert "names 3 classes but the model (keras) answers 5" in message
    (run / "labels.json").write_text(json.dumps({**labels, "classes": labels["classes"] + ["a", "b"]}))
    assert "names 7 classes" in one_sentence_error(run_cli("predict", str(run), image, "--runtime", "keras"))
    (run / "labels.json").write_text("{not json")
    assert "labels.json is not valid JSON" in one_sentence_error(run_cli("predict", str(run), image))
    (run / "labels.json").write_text(json.dumps(labels))
    (run / "config.json").write_text("[1, 2]")
    assert "config.json is not what inceptune writes" in one_sentence_error(run_cli("predict", str(run), image))
