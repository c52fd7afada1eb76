"""Phase 1 extraction on OpenVINO: checked against Keras within 1e-4, timed once per feature space, remembered."""

import json

import numpy as np
import pytest

from conftest import NARROW_WEIGHTS, make_color_dataset
from inceptune import hooks
from inceptune.data.scan import scan_dataset
from inceptune.features import runtime
from inceptune.features.cache import FeatureCache, feature_space
from inceptune.features.extract import extract_to_cache
from inceptune.models.backbone import build_backbone
from inceptune.models.weights import resolve_weights

pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'inceptune[openvino]')")

SIZE = 75
KINDS = ["avg-pool", "max-pool-mixed7", "before-mixed9"]


@pytest.fixture(scope="module")
def backbone():
    return build_backbone(resolve_weights(str(NARROW_WEIGHTS)), SIZE)


def _records(root, classes=("blue", "red"), per_class=10):
    return scan_dataset(make_color_dataset(root, per_class=per_class, classes=classes), min_classes=1).records


def _extract(records, cache_dir, backbone, choice, batch_size=8):
    cache = FeatureCache(cache_dir, feature_space(resolve_weights(str(NARROW_WEIGHTS)), SIZE))
    return cache, extract_to_cache(records, cache, backbone, KINDS, SIZE, batch_size, runtime=choice)


def _same_entries(a: FeatureCache, b: FeatureCache, records) -> None:
    for r in records:
        for kind in KINDS:
            x, y = a.get(kind, r.sha256), b.get(kind, r.sha256)
            # both stored in float16: equal up to its rounding of values that differ by at most 1e-4
            np.testing.assert_allclose(y, x, rtol=2e-3, atol=2e-4)


def _verdicts(cache: FeatureCache) -> list[dict]:
    return [json.loads(f.read_text()) for f in (cache.dir / "runtimes").glob("*/choice.json")]


def test_auto_checks_openvino_times_both_and_remembers_the_choice(tmp_path, backbone, monkeypatch):
    monkeypatch.setattr(runtime, "MIN_IMAGES", 16)  # 20 images: a check batch, a timed batch, then the winner
    records = _records(tmp_path / "data")
    keras_cache, keras_stats = _extract(records, tmp_path / "keras", backbone, "keras")
    assert keras_stats.runtime == "keras" and not (keras_cache.dir / "runtimes").exists()
    events = {"extractor_converted": 0, "extraction_runtime_chosen": 0}
    count = lambda event: lambda _: events.__setitem__(event, events[event] + 1)  # noqa: E731
    with hooks.listen("extractor_converted", count("extractor_converted")), \
            hooks.listen("extraction_runtime_chosen", count("extraction_runtime_chosen")):
        cache, stats = _extract(records, tmp_path / "auto", backbone, "auto")
    assert events == {"extractor_converted": 1, "extraction_runtime_chosen": 1}
    [choices] = _verdicts(cache)
    [verdict] = choices.values()
    assert verdict["exact"] and verdict["max_abs_diff"] <= runtime.EXACT
    assert verdict["keras_s_per_image"] > 0 and verdict["openvino_s_per_image"] > 0
    faster = "openvino" if verdict["openvino_s_per_image"] < verdict["keras_s_per_image"] else "keras"
    assert verdict["runtime"] == stats.runtime == faster
    _same_entries(keras_cache, cache, records)

    # A later extraction in the space: no conversion, no check, the remembered runtime answers.
    more = _records(tmp_path / "more", classes=("green",), per_class=20)
    events.update(extractor_converted=0, extraction_runtime_chosen=0)
    with hooks.listen("extractor_converted", count("extractor_converted")), \
            hooks.listen("extraction_runtime_chosen", count("extraction_runtime_chosen")):
        _, again = _extract(more, tmp_path / "auto", backbone, "auto")
    assert events == {"extractor_converted": 0, "extraction_runtime_chosen": 0}
    assert again.computed == 20 and again.runtime == verdict["runtime"]
    _extract(more, tmp_path / "keras", backbone, "keras")
    _same_entries(keras_cache, cache, more)


def test_openvino_when_asked_answers_once_checked_and_is_not_remembered(tmp_path, backbone):
    records = _records(tmp_path / "data", per_class=6)
    keras_cache, _ = _extract(records, tmp_path / "keras", backbone, "keras")
    cache, stats = _extract(records, tmp_path / "ov", backbone, "openvino")
    assert stats.runtime == "openvino" and stats.computed == 12
    assert _verdicts(cache) == []  # asked for, not measured: auto will still time it
    _same_entries(keras_cache, cache, records)


def test_openvino_that_differs_from_keras_is_not_used(tmp_path, backbone, monkeypatch, capsys):
    monkeypatch.setattr(runtime, "EXACT", 0.0)  # any difference at all now counts as one
    monkeypatch.setattr(runtime, "MIN_IMAGES", 16)
    records = _records(tmp_path / "data")
    cache, stats = _extract(records, tmp_path / "auto", backbone, "auto")
    [choices] = _verdicts(cache)
    [verdict] = choices.values()
    assert not verdict["exact"] and verdict["max_abs_diff"] > 0 and verdict["runtime"] == stats.runtime == "keras"
    assert verdict["keras_s_per_image"] is None  # not timed: it was not exact
    assert "extracting with Keras" in capsys.readouterr().err


def test_few_images_stay_on_keras_without_converting(tmp_path, backbone):
    records = _records(tmp_path / "data", per_class=4)
    cache, stats = _extract(records, tmp_path / "auto", backbone, "auto")
    assert stats.runtime == "keras" and stats.computed == 8
    assert not (cache.dir / "runtimes").exists()
