"""Quantized variants of an FP32 export: smaller files, faster on the right hardware, slightly different answers.

    fp16  weights stored in half precision, computed in FP32 on CPUs
          litert: TFLite float16 weights; openvino: compress_to_fp16; onnx: float16 graph, FP32 inputs/outputs
    bf16  openvino only: the FP32 file itself, computed by OpenVINO in bfloat16 (INFERENCE_PRECISION_HINT), on
          CPUs that compute it (AMX or AVX-512 BF16: about 3x FP32 on one with AMX); refused where OpenVINO
          would compute in FP32 anyway
    int8  post-training static quantization, calibrated on up to 100 of the run's training images
          litert: full-integer kernels with float I/O; openvino: NNCF; onnx: ONNX Runtime QDQ, per channel

FP32 and fp16 exports are checked against Keras with a stated tolerance on
the largest probability difference (TOLERANCES). Top-1 must agree on every
image whose Keras top-1 leads the runner-up by more than twice the
tolerance: closer calls may flip within the tolerance itself. For FP32
(1e-4) that is, in practice, every image. Failing either check is an error,
and nothing is kept.

A bf16 export and an int8 ONNX or OpenVINO one are checked on accuracy and
on every output instead (`quantize_checked`, deploy/accuracy.py), on the run's val photos:
against the FP32 export it may lose at most --max-accuracy-drop and must not
be worse by an exact McNemar test; against the FP32 Keras model it must keep
top-1, "none of these" and its probabilities within the stated bounds. When
plain post-training quantization loses accuracy, NNCF's accuracy control puts
the layers that cost most back to FP32 until it does not (not tried on a model
that answers at chance: a broken quantization); when even that fails,
nothing is kept. A LiteRT int8 file keeps the 0.15 tolerance check.

Measured on a 5-class flowers run at 150x150 (16 test images): fp16 2.0e-3
on all three formats; int8 9.7e-2 (OpenVINO), 9.8e-2 (ONNX), 1.0e-1 (LiteRT).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from inceptune import console
from inceptune.deploy.accuracy import HeldOut, accuracy_check
from inceptune.deploy.reference import Reference
from inceptune.errors import UserError
from inceptune.inference.runtimes import BF16, QUANTIZED
from inceptune.models.classifier import class_probabilities

# Largest allowed |p - p_keras| on the parity images (bf16 and ONNX/OpenVINO int8 are checked on the held-out
# photos instead: their entries only say which parity images count as clear calls).
TOLERANCES = {None: 1e-4, "fp16": 1e-2, BF16: 0.15, "int8": 0.15}
CALIBRATION_BATCH = 10  # photos per NNCF calibration item (_batches)
COLLAPSED = 0.95  # an int8 model that gives one class to this share of the photos, where FP32 does not, is broken


def decisive(expected: np.ndarray, tolerance: float) -> np.ndarray:
    """Rows whose top-1 leads the runner-up by more than 2 x tolerance: their top-1 must not change."""
    top2 = -np.sort(-expected, axis=1)[:, :2]
    return (top2[:, 0] - top2[:, 1]) > 2 * tolerance
SUPPORTED = {"litert": ("fp16", "int8"), "onnx": ("fp16", "int8"), "openvino": ("fp16", BF16, "int8")}


def check_quantize(fmt: str, quantize: str | None) -> None:
    if quantize is None:
        return
    if quantize not in QUANTIZED:
        raise UserError(f"--quantize must be fp16, bf16 or int8, got {quantize}.")
    if quantize == BF16 and fmt != "openvino":
        raise UserError("bf16 is an OpenVINO inference precision; use --format openvino --quantize bf16.")
    if quantize not in SUPPORTED.get(fmt, ()):
        raise UserError(f"{fmt} exports are FP32 only; quantize with --format litert, onnx or openvino.")


def litert_options(quantize: str | None, calibration: Callable[[], np.ndarray]) -> dict:
    """TFLite converter settings passed through keras.Model.export(format='litert')."""
    if quantize is None:
        return {}
    import tensorflow as tf

    if quantize == "fp16":
        return {"optimizations": [tf.lite.Optimize.DEFAULT], "target_spec": {"supported_types": [tf.float16]}}

    def representative():
        for image in calibration():
            yield [image[None].astype(np.float32)]

    return {"optimizations": [tf.lite.Optimize.DEFAULT], "representative_dataset": representative}


def quantize_file(fmt: str, quantize: str, fp32: Path, target: Path, calibration: Callable[[], np.ndarray]) -> None:
    """Write the `quantize` variant of the FP32 ONNX or OpenVINO file `fp32` to `target`."""
    if fmt == "onnx":
        _quantize_onnx(quantize, fp32, target, calibration)
    elif fmt == "openvino":
        _quantize_openvino(quantize, fp32, target, calibration)
    else:
        raise UserError(f"{fmt} exports cannot be quantized after the fact.")


def quantize_checked(fmt: str, quantize: str, fp32: Path, target: Path, reference: Reference,
                     calibration: Callable[[], np.ndarray], max_drop: float) -> tuple[dict, list[np.ndarray]]:
    """Write the bf16 or int8 variant of the FP32 ONNX or OpenVINO file `fp32` to `target`, one that keeps the FP32
    file's score on the held-out photos (deploy/accuracy.py); returns the accuracy check (passed or not) that
    export.json records, and the written file's outputs there (for the every-output check)."""
    held = reference.held
    fp32_outputs = reference.keras_held  # the FP32 file answers these within 1e-4 (its parity check): run once
    images = np.zeros((0,))
    if quantize == BF16:  # the FP32 file itself, computed in bfloat16 by OpenVINO
        _link_openvino(fp32, target)
    else:
        images = calibration()
        quantize_file(fmt, quantize, fp32, target, lambda: images)
    outputs = reference.export_held(fmt, target, quantize)
    method = "bf16" if quantize == BF16 else "post-training"
    check = accuracy_check(held, fp32_outputs, outputs, max_drop, method, len(images))
    if quantize == BF16 or check["passed"] or _collapsed(held, fp32_outputs, outputs):
        return check, outputs
    console.info(f"int8 {fmt} loses {check['drop']:.2%} {held.metric} on {check['images']} held-out photos "
                 f"(at most {max_drop:.2%} allowed); NNCF's accuracy control puts the costliest layers back to FP32")
    try:
        _accuracy_control(fmt, fp32, target, images, held, max_drop)
    except Exception as exc:  # noqa: BLE001 - NNCF's own errors are many; the plain int8 file stays refused
        console.warn(f"NNCF's accuracy control failed on the {fmt} model: {str(exc).splitlines()[0][:200]}")
        return check, outputs
    outputs = reference.export_held(fmt, target, quantize)
    return accuracy_check(held, fp32_outputs, outputs, max_drop, "accuracy-control", len(images)), outputs


def _link_openvino(fp32: Path, target: Path) -> None:
    """The FP32 IR (model.xml and its model.bin) under `target`'s name: hard links where the disk allows."""
    for source, dest in ((fp32, target), (fp32.with_suffix(".bin"), target.with_suffix(".bin"))):
        try:
            os.link(source, dest)
        except OSError:
            shutil.copyfile(source, dest)


def _collapsed(held: HeldOut, fp32: list[np.ndarray], quantized: list[np.ndarray]) -> bool:
    """Whether int8 answers one class for (nearly) every photo where FP32 answers several: a broken quantization
    (seen on binary models), which minutes of NNCF's accuracy control do not repair."""
    if held.multilabel:
        return False
    answered = [np.bincount(class_probabilities(o[0], False).argmax(axis=1)) for o in (fp32, quantized)]
    share = [counts.max() / counts.sum() for counts in answered]
    if share[1] >= COLLAPSED and share[0] < COLLAPSED:
        console.info(f"int8 answers one class for {share[1]:.0%} of the held-out photos (FP32 for {share[0]:.0%}): "
                     "a broken quantization, refused without trying NNCF's accuracy control")
        return True
    return False


def _accuracy_control(fmt: str, fp32: Path, target: Path, images: np.ndarray, held: HeldOut,
                      max_drop: float) -> None:
    import nncf

    def validate(model, batches):  # NNCF hands over a compiled OpenVINO model or an ONNX ModelProto
        if fmt == "onnx":
            import onnxruntime as ort

            session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            outputs = [session.run(None, {name: batch})[0] for batch in batches]
        else:
            outputs = [next(iter(model(batch).values())) for batch in batches]
        return held.score(np.concatenate(outputs)), None

    if fmt == "onnx":
        import onnx

        model = onnx.load(str(fp32))
        name = model.graph.input[0].name
        feed = lambda x: {name: x}  # noqa: E731 - NNCF's ONNX backend runs named inputs
    else:
        import openvino as ov

        model = ov.Core().read_model(str(fp32))
        feed = None
    quantized = nncf.quantize_with_accuracy_control(
        model, nncf.Dataset(_batches(images), feed), nncf.Dataset(list(held.batches()), feed), validate,
        max_drop=max_drop, drop_type=nncf.DropType.ABSOLUTE, subset_size=len(_batches(images)))
    if fmt == "onnx":
        onnx.save(quantized, str(target))
    else:
        ov.save_model(quantized, str(target), compress_to_fp16=False)


def _quantize_onnx(quantize: str, fp32: Path, target: Path, calibration) -> None:
    import onnx

    if quantize == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        onnx.save(convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True), str(target))
        return
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            name = onnx.load(str(fp32)).graph.input[0].name
            self.rows = iter([{name: image[None].astype(np.float32)} for image in calibration()])

        def get_next(self):
            return next(self.rows, None)

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # ONNX Runtime advises pre-processing on the root logger: noise for our graph
    try:
        quantize_static(str(fp32), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)


def _quantize_openvino(quantize: str, fp32: Path, target: Path, calibration) -> None:
    import openvino as ov

    model = ov.Core().read_model(str(fp32))
    if quantize == "fp16":
        ov.save_model(model, str(target), compress_to_fp16=True)
        return
    try:
        import nncf
    except ImportError:
        raise UserError("int8 OpenVINO exports need NNCF: pip install 'inceptune[openvino]'.") from None
    images = calibration()
    quantized = nncf.quantize(model, nncf.Dataset(_batches(images)), subset_size=len(_batches(images)))
    ov.save_model(quantized, str(target), compress_to_fp16=False)


def _batches(images: np.ndarray) -> list[np.ndarray]:
    """NNCF's calibration items: CALIBRATION_BATCH photos each. Its activation ranges average the extremes of each
    item, so single photos clip the rare large activations the OOD score reads: on flowers5 (val photos, int8
    against Keras), batches of 10 kept the same "none of these" decision on 99.0% (150 px) and 98.0% (299 px)
    of them, single photos on 95.1% and 90.2%, at the same cost."""
    return [images[i:i + CALIBRATION_BATCH] for i in range(0, len(images), CALIBRATION_BATCH)]
