"""Which exports `--runtime auto` may choose, the int8 accuracy record, and settings from the environment."""

import json

import numpy as np
import pytest

from conftest import EXPORTS
from inceptune.deploy.accuracy import HeldOut, accuracy_check
from inceptune.inference.fastest import _key, candidates
from inceptune.machine import machine
from inceptune.models.weights import file_fingerprint
from inceptune.settings import resolve
from inceptune.settings.spec import SettingError


def _export(run, name, **report):
    folder = run / "export" / name
    folder.mkdir(parents=True)
    fmt = report.setdefault("format", name.partition("-")[0])
    (folder / {"onnx": "model.onnx", "openvino": "model.xml", "litert": "model.tflite"}[fmt]).write_bytes(b"x")
    report.setdefault("quantize", None)
    report.setdefault("model_sha256", file_fingerprint(run / "model.keras"))
    (folder / "export.json").write_text(json.dumps({"image_size": 75, **report}))


def test_auto_chooses_among_checked_exports_of_this_very_model(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"the model")
    _export(run, "onnx")
    _export(run, "openvino")
    _export(run, "openvino-int8", quantize="int8", accuracy={"passed": True, "drop": 0.0}, outputs={"passed": True})
    _export(run, "onnx-int8", quantize="int8", accuracy={"passed": False, "drop": 0.02},  # lost accuracy
            outputs={"passed": True})
    _export(run, "unlike-int8", format="openvino", quantize="int8", accuracy={"passed": True},  # answers unlike
            outputs={"passed": False})                                                        # FP32 somewhere
    _export(run, "older-int8", format="openvino", quantize="int8", accuracy={"passed": True})  # accuracy alone
    _export(run, "onnx-fp16", quantize="fp16")  # no accuracy check: never auto's
    _export(run, "litert")  # for phones
    _export(run, "old", format="onnx", model_sha256="sha256-of-an-older-model")  # stale: model.keras changed
    assert sorted(candidates(run)) == ["onnx", "openvino", "openvino-int8"]
    (run / "model.keras").write_bytes(b"retrained")
    assert candidates(run) == {}  # every export is of the old model now


def test_a_remembered_choice_is_per_machine_and_per_set_of_exports():
    here = machine()
    assert here["cores"] >= 1 and here["cpu"]
    exports = {"onnx": {"model_sha256": "a", "bytes": 1}, "openvino": {"model_sha256": "a", "bytes": 2}}
    assert _key(here, exports) == _key(dict(here), dict(exports))
    assert _key({**here, "cpu": "another CPU"}, exports) != _key(here, exports)
    assert _key(here, {"onnx": exports["onnx"]}) != _key(here, exports)


def test_the_accuracy_record_of_a_quantized_export():
    truth = np.array([0, 1, 2, 1])
    held = HeldOut("test", np.zeros((4, 2, 2, 3), "float32"), truth, multilabel=False)
    right = np.eye(3)[truth]
    one_wrong = right.copy()
    one_wrong[3] = [0.6, 0.4, 0.0]
    assert held.score(right) == 1.0 and held.score([one_wrong, np.zeros(4)]) == 0.75  # an OOD output is ignored
    check = accuracy_check(held, [right], [one_wrong], 0.005, "post-training", 30)
    assert not check["passed"] and check["drop"] == 0.25 and check["images"] == 4 and check["metric"] == "accuracy"
    assert accuracy_check(held, [one_wrong], [one_wrong], 0.005, "post-training", 30)["passed"]
    assert accuracy_check(held, [one_wrong], [right], 0.0, "post-training", 30)["passed"]  # better than FP32 passes

    labels = np.array([[1, 0], [0, 1], [1, 1]])
    multi = HeldOut("val", np.zeros((3, 2, 2, 3), "float32"), labels, multilabel=True, thresholds=np.array([0.5, 0.3]))
    assert multi.metric == "macro_f1"
    assert multi.score(np.array([[0.9, 0.1], [0.2, 0.35], [0.7, 0.4]])) == 1.0  # 0.35 and 0.4 pass label 2's 0.3
    assert multi.score(np.array([[0.9, 0.1], [0.2, 0.25], [0.7, 0.4]])) < 1.0


def test_an_environment_variable_replaces_the_export_default_but_not_a_given_value(monkeypatch, tmp_path):
    monkeypatch.delenv("INCEPTUNE_EXPORT", raising=False)
    assert resolve("train", {"data": str(tmp_path)}).run.export == "auto"
    monkeypatch.setenv("INCEPTUNE_EXPORT", "none")
    assert resolve("train", {"data": str(tmp_path)}).run.export == "none"
    assert resolve("train", {"data": str(tmp_path), "export": "auto"}).run.export == "auto"
    resolve("cv", {"data": str(tmp_path)})  # cv does not export: the variable does not concern it
    with pytest.raises(SettingError, match="not used by cv"):
        resolve("cv", {"data": str(tmp_path), "export": "none"})
    monkeypatch.setenv("INCEPTUNE_EXPORT", "sometimes")
    with pytest.raises(SettingError, match="--export"):
        resolve("train", {"data": str(tmp_path)})


@EXPORTS
@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_nncf_accuracy_control_gives_an_int8_model_within_the_drop(tmp_path, fmt):
    """The fallback when plain int8 loses too much: NNCF's accuracy control on each backend (its ONNX backend
    needs named inputs; this once failed there and kept nothing)."""
    import keras

    from inceptune.deploy.quantize import _accuracy_control
    from inceptune.inference.runtimes import load_runtime

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3), name="pixels")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, activation="relu")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    pixels = np.random.default_rng(0).uniform(0, 255, (48, 16, 16, 3)).astype("float32")
    model(pixels[:1])  # exporters want a model that has run
    fp32 = tmp_path / "model.onnx"
    model.export(str(fp32), format="onnx", verbose=False)
    if fmt == "openvino":
        import openvino as ov

        ov.save_model(ov.convert_model(str(fp32)), str(tmp_path / "model.xml"), compress_to_fp16=False)
        fp32 = tmp_path / "model.xml"
    held = HeldOut("test", pixels, load_runtime(fmt, fp32)(pixels).argmax(axis=1), multilabel=False)
    assert held.score_with(load_runtime(fmt, fp32)) == 1.0  # the FP32 model is right on every photo
    target = tmp_path / f"int8{fp32.suffix}"
    _accuracy_control(fmt, fp32, target, pixels[:32], held, max_drop=0.0)
    assert held.score_with(load_runtime(fmt, target)) == 1.0
