"""The embedded default: `inceptune demo` runs offline and learns its generated dataset."""

import json

from conftest import run_cli


def test_demo_trains_evaluates_and_predicts_offline(tmp_path):
    proc = run_cli("demo", "--out", str(tmp_path / "demo"), env={"INCEPTUNE_WEIGHTS": ""})
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "demo" / "run" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.8
    assert "Done." in proc.stderr and str(tmp_path / "demo" / "run") in " ".join(proc.stderr.split())
