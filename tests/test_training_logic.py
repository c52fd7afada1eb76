"""Parts of the training recipe that need no pretrained weights or photos: class weights, schedules, resume."""

import json

import pytest

from conftest import make_color_dataset, one_sentence_error, run_cli
from inceptune.data.dataset import Dataset
from inceptune.data.scan import ImageRecord
from inceptune.errors import UserError
from inceptune.settings import resolve
from inceptune.training.checkpoint import Checkpoint
from inceptune.training.class_weights import class_weights
from inceptune.training.schedules import Schedule, learning_rate


def test_class_weights_auto_are_inverse_frequency():
    records = [ImageRecord(f"{i}.jpg", "common" if i < 9 else "rare", str(i), "train") for i in range(12)]
    data = Dataset("x", ["common", "rare"], records)
    weights = class_weights("auto", data)
    assert weights == {0: pytest.approx(12 / (2 * 9)), 1: pytest.approx(12 / (2 * 3))}
    assert class_weights("rare=5", data) == {0: 1.0, 1: 5.0}
    with pytest.raises(UserError, match="--class-weight names 'wasps', which is not a class"):
        class_weights("wasps=2", data)


def test_schedules_warm_up_then_decay():
    cosine = Schedule(1.0, "cosine", total_steps=100, warmup_steps=10)
    assert float(cosine(0)) == pytest.approx(0.1) and float(cosine(5)) == pytest.approx(0.55)
    assert float(cosine(10)) == pytest.approx(1.0) and float(cosine(55)) == pytest.approx(0.5, abs=1e-6)
    assert float(cosine(100)) == pytest.approx(0.0, abs=1e-6)
    step = Schedule(1.0, "step", total_steps=100)
    assert [float(step(s)) for s in (0, 49, 50, 74, 75, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    assert learning_rate(0.5, "constant", 10, 3) == 0.5


def test_resume_refuses_other_settings_in_one_sentence(tmp_path):
    data = make_color_dataset(tmp_path / "data", per_class=4)
    run = tmp_path / "run"
    earlier = resolve("train", {"data": str(data), "epochs": 5, "weights": "none"})
    Checkpoint(run, earlier).dir.mkdir(parents=True)
    (run / "checkpoint" / "state.json").write_text(json.dumps({"settings": Checkpoint(run, earlier).settings}))
    message = one_sentence_error(run_cli("train", str(data), "--weights", "none", "--epochs", "7", "--out", str(run),
                                         "--resume"))
    assert "other settings (epochs 5, now 7)" in message
