"""The command line as a user meets it: real processes, real exit codes."""

import json

from conftest import NARROW_WEIGHTS, one_sentence_error, make_color_dataset, run_cli


def test_missing_path_single_class_and_no_images_exit_2(tmp_path):
    assert "does not exist" in one_sentence_error(run_cli("train", str(tmp_path / "nowhere"), "--weights", "none"))
    make_color_dataset(tmp_path / "single", per_class=3, classes=("red",))
    assert "only one class" in one_sentence_error(run_cli("train", str(tmp_path / "single"), "--weights", "none"))
    (tmp_path / "textonly" / "a").mkdir(parents=True)
    (tmp_path / "textonly" / "a" / "notes.txt").write_text("x")
    proc = run_cli("train", str(tmp_path / "textonly"), "--weights", "none", "--out", str(tmp_path / "run"))
    assert "No readable images" in one_sentence_error(proc)
    assert not (tmp_path / "run").exists()  # a rejected dataset leaves no empty run folder behind


def test_bad_settings_and_runs_exit_2(tmp_path):
    # Every setting's checks: test_settings.py. Here, the command as a user meets it.
    make_color_dataset(tmp_path / "data", per_class=4)
    out = one_sentence_error(run_cli("train", str(tmp_path / "data"), "--image-size", "32", "--weights", "none"))
    assert "--image-size must be at least 75 for InceptionV3, got 32." in out
    out = one_sentence_error(run_cli("train", str(tmp_path / "data"), "--unfreeze-from", "mixed12", "--weights", "none"))
    assert "The 'unfreeze_from' setting (--unfreeze-from) must be a str among {'mixed0'," in out and "'mixed12'" in out
    assert "not a finished inceptune run" in one_sentence_error(run_cli("predict", str(tmp_path), str(tmp_path)))


def test_messy_dataset_trains_and_the_run_lists_each_skipped_file(tmp_path):
    data = make_color_dataset(tmp_path / "data", per_class=8)
    jpeg = (data / "red" / "red_00.jpg").read_bytes()
    (data / "red" / "corrupt.jpg").write_bytes(jpeg[:200] + b"\x00" * 50 + jpeg[250:400])
    (data / "red" / "zero.jpg").write_bytes(b"")
    (data / "blue" / "text.jpg").write_text("I am text")
    (data / "empty").mkdir()
    proc = run_cli("train", str(data), "--out", str(tmp_path / "run"), "--weights", str(NARROW_WEIGHTS), "--image-size", "75",
                   "--epochs", "3", "--fine-tune-epochs", "1")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "run" / "dataset.json").read_text())
    reasons = {s["path"].rsplit("/", 1)[-1]: s["reason"] for s in summary["skipped"]}
    assert set(reasons) == {"corrupt.jpg", "zero.jpg", "text.jpg"}
    assert reasons["zero.jpg"].startswith("empty file") and reasons["text.jpg"].startswith("not an image")
    assert any("'empty'" in w for w in summary["warnings"])
    assert "corrupt.jpg" in proc.stderr and "zero.jpg" in proc.stderr  # told on the terminal too
    assert (tmp_path / "run" / "model.keras").is_file()
    # The finished run is not overwritten by accident.
    again = run_cli("train", str(data), "--out", str(tmp_path / "run"), "--weights", str(NARROW_WEIGHTS))
    assert "already holds a finished run" in one_sentence_error(again)
    # CSV output of predict: a header, then rank rows.
    proc = run_cli("predict", str(tmp_path / "run"), str(data / "blue" / "blue_01.jpg"), "--csv", "--top", "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "path,rank,label,probability,unknown,ood_score,labels,set,error" and len(lines) == 3
    row = lines[1].split(",")
    assert row[4] in ("true", "false") and float(row[5]) >= 0  # the run's "none of these" on every row
    assert row[7] and set(row[7].split(";")) <= {"blue", "red"}  # and its prediction set


def test_version_and_short_help():
    from inceptune.vocabulary.version import __version__

    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"inceptune {__version__}"
    for args in (("-h",), ("train", "-h"), ("predict", "-h")):
        shown = run_cli(*args)
        assert shown.returncode == 0 and "Usage" in shown.stdout, (args, shown.stderr)
    assert "--out" in run_cli("train", "-h").stdout


def test_train_help_fits_a_terminal_and_help_all_lists_every_setting():
    """`train --help` at 80 columns: the first choices (settings' BASIC), every name whole, at most 120 lines;
    `--help-all` lists each of its settings with its default (issue 37)."""
    from inceptune.settings import BASIC, TABLE, command_settings

    shown = run_cli("train", "--help", env={"COLUMNS": "80"}, isolated=True)
    lines = shown.stdout.splitlines()
    assert shown.returncode == 0 and len(lines) <= 120 and max(map(len, lines)) <= 80
    assert "…" not in shown.stdout  # rich cuts a name that does not fit with an ellipsis
    settings = [n for n in command_settings("train") if n != "data"]
    for name in settings:
        flag = TABLE[name][1].cli_flag(name)
        assert (f" {flag} " in shown.stdout) == (name in BASIC), flag
    assert "[default: 0.2]" in shown.stdout  # as given, not "(0.2)"
    every = run_cli("train", "--help-all", env={"COLUMNS": "80"})
    assert every.returncode == 0
    listed = [line.split()[0] for line in every.stdout.splitlines() if line.startswith("--")]
    assert listed == [TABLE[n][1].cli_flag(n) for n in settings]
