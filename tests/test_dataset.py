"""Scanning a folder, skipping bad files with reasons, splitting deterministically."""

import shutil

import pytest

from conftest import make_color_dataset, make_image
from inceptune.data.dataset import load_dataset
from inceptune.data.scan import scan_dataset
from inceptune.errors import UserError


def skipped_reasons(dataset):
    return {s.path.rsplit("/", 1)[-1]: s.reason for s in dataset.skipped}


def test_class_folders_give_sorted_classes_and_all_three_splits(tmp_path):
    make_color_dataset(tmp_path, per_class=10, classes=("red", "blue"))
    ds = load_dataset(tmp_path, val_split=0.2, test_split=0.1, seed=1)
    assert ds.classes == ["blue", "red"]
    assert {c: n for c, n in ds.counts()["val"].items()} == {"blue": 2, "red": 2}
    assert sum(ds.counts()["test"].values()) == 2 and sum(ds.counts()["train"].values()) == 14


def test_splits_are_deterministic_and_depend_on_the_seed(tmp_path):
    make_color_dataset(tmp_path, per_class=20)
    split = lambda seed: {r.path: r.split for r in load_dataset(tmp_path, seed=seed).records}
    assert split(3) == split(3)
    assert split(3) != split(4)


def test_folder_splits_are_kept_and_missing_test_is_carved_from_train(tmp_path):
    make_color_dataset(tmp_path / "train", per_class=10)
    make_color_dataset(tmp_path / "val", per_class=3)
    ds = load_dataset(tmp_path, val_split=0.5, test_split=0.2)
    assert all("/val/" in r.path for r in ds.split("val")) and len(ds.split("val")) == 6
    assert len(ds.split("test")) == 4 and all("/train/" in r.path for r in ds.split("test"))


def test_identical_files_stay_in_one_carved_split(tmp_path):
    make_color_dataset(tmp_path, per_class=10)
    for i in range(5):
        shutil.copy(tmp_path / "red" / "red_00.jpg", tmp_path / "red" / f"copy_{i}.jpg")
    ds = load_dataset(tmp_path, val_split=0.3, test_split=0.3)
    copies = [r.split for r in ds.records if r.sha256 == ds.records[0].sha256 or "copy_" in r.path]
    assert ds.leakage == []
    assert len({r.split for r in ds.records if "copy_" in r.path or r.path.endswith("red_00.jpg")}) == 1, copies


def test_identical_files_across_folder_splits_are_reported_as_leakage(tmp_path):
    make_color_dataset(tmp_path / "train", per_class=6)
    make_color_dataset(tmp_path / "val", per_class=2)
    shutil.copy(tmp_path / "train" / "red" / "red_05.jpg", tmp_path / "val" / "red" / "leaked.jpg")
    ds = load_dataset(tmp_path)
    carved = next(r.split for r in ds.records if r.path.endswith("red_05.jpg"))  # train, or carved into test
    assert len(ds.leakage) == 1 and ds.leakage[0]["splits"] == sorted([carved, "val"])


def test_bad_files_are_skipped_with_their_reasons(tmp_path):
    make_color_dataset(tmp_path, per_class=6)
    (tmp_path / "red" / "zero.jpg").write_bytes(b"")
    (tmp_path / "red" / "notes.jpg").write_text("not a picture")
    good = (tmp_path / "blue" / "blue_00.jpg").read_bytes()
    (tmp_path / "blue" / "half.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "blue" / "readme.txt").write_text("hello")
    (tmp_path / "blue" / ".DS_Store").write_bytes(b"\0\0")
    (tmp_path / "empty_class").mkdir()
    ds = load_dataset(tmp_path)
    reasons = skipped_reasons(ds)
    assert reasons["zero.jpg"].startswith("empty file")
    assert reasons["notes.jpg"].startswith("not an image")
    assert "truncated" in reasons["half.jpg"] or "corrupt" in reasons["half.jpg"]
    assert reasons["readme.txt"].startswith("not an image file extension")
    assert reasons[".DS_Store"] == "hidden file"
    assert any("empty_class" in w for w in ds.warnings)
    assert ds.classes == ["blue", "red"] and len(ds.records) == 12


def test_nested_folders_and_symlink_loops(tmp_path):
    make_color_dataset(tmp_path, per_class=3)
    make_image(tmp_path / "red" / "deeper" / "nested.png")
    (tmp_path / "red" / "deeper" / "loop").symlink_to(tmp_path / "red")
    scan = scan_dataset(tmp_path)
    assert any(r.path.endswith("nested.png") and r.label == "red" for r in scan.records)
    assert any("symlink loop" in s.reason for s in scan.skipped)


@pytest.mark.parametrize("setup, message", [
    (lambda p: None, "does not exist"),
    (lambda p: make_color_dataset(p, per_class=3, classes=("red",)), "only one class"),
    (lambda p: (p / "a").mkdir(parents=True) or (p / "a" / "x.txt").write_text("x"), "No readable images"),
])
def test_unusable_datasets_are_one_sentence_errors(tmp_path, setup, message):
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(UserError, match=message) as info:
        load_dataset(root)
    assert "\n" not in str(info.value)


def test_class_in_val_but_not_train_is_an_error(tmp_path):
    make_color_dataset(tmp_path / "train", per_class=3)
    make_color_dataset(tmp_path / "val", per_class=2, classes=("red", "green"))
    with pytest.raises(UserError, match="class 'green' that train/ does not have"):
        load_dataset(tmp_path)
