"""Full-size acceptance checks of the core workflow on ../shared (./run test-slow; minutes on 2 cores)."""

import json

import pytest

import inceptune
from conftest import HYMENOPTERA, SHARED_WEIGHTS, requires_shared

pytestmark = [pytest.mark.slow, requires_shared]


def test_hymenoptera_at_299_reaches_093_and_a_second_run_is_nearly_free(tmp_path, monkeypatch):
    monkeypatch.setenv("INCEPTUNE_CACHE", str(tmp_path / "cache"))
    first = inceptune.train(str(HYMENOPTERA), out=str(tmp_path / "run1"), weights=str(SHARED_WEIGHTS))
    assert first.metrics["val"]["accuracy"] >= 0.93
    assert json.loads((tmp_path / "run1" / "metrics.json").read_text())["val"]["images"] == 153
    second = inceptune.train(str(HYMENOPTERA), out=str(tmp_path / "run2"), weights=str(SHARED_WEIGHTS))
    assert second.metrics["phase1"]["features"]["from_cache"] == second.metrics["phase1"]["features"]["images"]
    assert second.metrics["phase1"]["seconds"] <= 0.10 * first.metrics["phase1"]["seconds"]
