"""One object for a trained run: `inceptune.load` answers predict, probabilities, explain and evaluate."""

from __future__ import annotations

import numpy as np
import pytest

import inceptune
from conftest import NARROW_WEIGHTS, make_color_dataset
from contract import check_run_folder
from inceptune import hooks


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Blue vs red at 75x75 on the narrow network (no download, no ../shared): both phases, a test split."""
    root = tmp_path_factory.mktemp("tiny")
    data = make_color_dataset(root / "data", per_class=10)
    result = inceptune.train(str(data), out=str(root / "run"), weights=str(NARROW_WEIGHTS), image_size=75, epochs=4,
                             fine_tune_epochs=1, batch_size=8, test_split=0.2, tensorboard=False,
                             duplicate_similarity=1.0)  # the colour squares are all alike: no grouping here
    return result, data


def test_the_run_folder_keeps_its_contract(tiny):
    result, _ = tiny
    labels = check_run_folder(result.run)
    assert (labels["classes"], labels["task"]) == (["blue", "red"], "binary")
    assert set(labels) == {"classes", "task", "calibration", "ood", "sets"}  # the temperature in the model; the threshold


def test_a_loaded_run_answers_500_images_and_loads_its_model_once(tiny, tmp_path):
    result, data = tiny
    images = sorted(str(p) for p in data.rglob("*.jpg"))
    paths = (images * 25)[:500]
    (tmp_path / "broken.jpg").write_text("not an image")
    loads = []
    with hooks.listen("model_loaded", loads.append):
        model = inceptune.load(str(result.run))
        answers = model.predict(paths, top=1)
        proba = model.predict_proba([*images, str(tmp_path / "broken.jpg")])
    assert len(loads) == 1 and model.runtime == "keras" and model.classes == ["blue", "red"]
    assert len(answers) == 500 and all(len(a["top"]) == 1 for a in answers)
    assert proba.paths == images and proba.values.shape == (20, 2)
    broken = str(tmp_path / "broken.jpg")
    assert list(proba.failed) == [broken] and proba.failed[broken].startswith("not an image")
    np.testing.assert_allclose(proba.values.sum(axis=1), 1.0, atol=1e-6)
    first = {a["path"]: a for a in answers[:20]}
    for path, row in zip(proba.paths, proba.values):
        assert first[path]["probabilities"]["red"] == pytest.approx(row[1], abs=1e-6)
    # The functions keep the run loaded: two calls, one load.
    with hooks.listen("model_loaded", loads.append):
        inceptune.predict(str(result.run), images[:2])
        again = inceptune.predict(str(result.run), images[:2])
    # abs: another batch size runs other kernels, so the float32 rounding differs (2.5e-10 seen on AVX2)
    assert len(loads) == 2 and again[0]["probabilities"] == pytest.approx(first[images[0]]["probabilities"], abs=1e-6)


def test_evaluate_and_explain_come_from_the_same_object(tiny):
    result, _ = tiny
    model = inceptune.load(str(result.run))
    metrics = model.evaluate()
    assert metrics["images"] == result.metrics["test"]["images"] == 4 and metrics["runtime"] == "keras"
    assert metrics["accuracy"] == pytest.approx(result.metrics["test"]["accuracy"])
    image = np.full((60, 80, 3), (30, 30, 220), np.uint8)  # pixels work as well as paths
    answer = model.explain(image)
    expected = model.infer(image[None].astype("float32"))[0]
    assert answer["heatmap"].shape == (60, 80)
    assert [answer["probabilities"][c] for c in model.classes] == pytest.approx(expected.tolist(), abs=1e-5)
    with pytest.raises(inceptune.UserError, match="Unknown class 'green'"):
        model.explain(image, class_name="green")
