"""Quantized variants of an FP32 export: smaller files, faster on the right hardware, slightly different answers.

    fp16  weights stored in half precision, computed in FP32 on CPUs
          litert: TFLite float16 weights; openvino: compress_to_fp16; onnx: float16 graph, FP32 inputs/outputs
    int8  post-training static quantization, calibrated on the run's training images
          litert: full-integer kernels with float I/O; openvino: NNCF; onnx: ONNX Runtime QDQ, per channel

Each variant is checked against Keras like the FP32 export, with its own
stated tolerance on the largest probability difference (TOLERANCES). Top-1
must agree on every image whose Keras top-1 leads the runner-up by more than
twice the tolerance: closer calls may flip within the tolerance itself. For
FP32 (1e-4) that is, in practice, every image. Failing either check is an
error, and nothing is kept.

Measured on a 5-class flowers run at 150x150 (16 test images): fp16 2.0e-3
on all three formats; int8 9.7e-2 (OpenVINO), 9.8e-2 (ONNX), 1.0e-1 (LiteRT).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from inceptune.errors import UserError

# Largest allowed |p - p_keras| on the parity images.
TOLERANCES = {None: 1e-4, "fp16": 1e-2, "int8": 0.15}


def decisive(expected: np.ndarray, tolerance: float) -> np.ndarray:
    """Rows whose top-1 leads the runner-up by more than 2 x tolerance: their top-1 must not change."""
    top2 = -np.sort(-expected, axis=1)[:, :2]
    return (top2[:, 0] - top2[:, 1]) > 2 * tolerance
SUPPORTED = {"litert": ("fp16", "int8"), "onnx": ("fp16", "int8"), "openvino": ("fp16", "int8")}


def check_quantize(fmt: str, quantize: str | None) -> None:
    if quantize is None:
        return
    if quantize not in ("fp16", "int8"):
        raise UserError(f"--quantize must be fp16 or int8, got {quantize}.")
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

    quantize_static(str(fp32), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


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
    quantized = nncf.quantize(model, nncf.Dataset(list(images[:, None])), subset_size=len(images))
    ov.save_model(quantized, str(target), compress_to_fp16=False)
