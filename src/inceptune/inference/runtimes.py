"""Runtimes that run an exported model: fixed-size pixels (N, S, S, 3) in, the model's raw outputs out (one
array, or a list when the model also answers its OOD score: models/ood.py).

Callers turn outputs into class probabilities (`models.classifier.class_probabilities`).
Exports live in RUN/export/<format>[-<quantize>]/ (deploy/export.py writes them); which one answers
is chosen in inference/fastest.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from inceptune.errors import UserError

DEFAULT_RUNTIME = "auto"  # the fastest checked export on this machine, by timing (inference/fastest.py), else Keras
RUNTIMES = ("auto", "keras", "onnx", "openvino")  # also a quantized export by its folder name: onnx-int8, ...
EXPORTED = ("onnx", "openvino", "litert")  # runnable exports; litert mainly for checking phone builds
BF16 = "bf16"  # OpenVINO's bfloat16 inference precision: the FP32 file, computed in bf16 where the CPU does it
QUANTIZED = ("fp16", BF16, "int8")  # an export's precisions besides FP32: RUN/export/<format>-<precision>/
CHECKED = (BF16, "int8")  # checked on the held-out photos' accuracy and every output before auto may choose them
FILES = {"saved_model": "1", "onnx": "model.onnx", "openvino": "model.xml", "litert": "model.tflite"}


def load_runtime(fmt: str, artefact: Path, quantize: str | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """pixels -> raw outputs of the export `artefact`; `quantize` "bf16" computes an OpenVINO file in bfloat16
    (UserError where OpenVINO does not on this CPU); int8 and fp16 files compute as stored."""
    artefact = Path(artefact)
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(artefact), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: _outputs(session.run(None, {name: np.asarray(x, np.float32)}))
    if fmt == "openvino":
        import openvino as ov

        # FP32 explicitly: on CPUs with bfloat16 units OpenVINO otherwise computes in bf16 (~1e-2 off), which
        # only a checked openvino-bf16 export asks for.
        hint = BF16 if quantize == BF16 else "f32"
        compiled = ov.Core().compile_model(str(artefact), "CPU", {"INFERENCE_PRECISION_HINT": hint})
        if compiled.get_property("INFERENCE_PRECISION_HINT").to_string() != hint:
            raise UserError(f"OpenVINO does not compute in {hint} on this CPU.")
        return lambda x: _outputs(list(compiled(np.asarray(x, np.float32)).values()))
    if fmt == "litert":
        interpreter = _litert_interpreter(artefact)

        def run(x):
            inp = interpreter.get_input_details()[0]
            outputs = sorted(interpreter.get_output_details(), key=lambda o: o["name"])  # Identity, Identity_1, ...
            interpreter.resize_tensor_input(inp["index"], x.shape)
            interpreter.allocate_tensors()
            interpreter.set_tensor(inp["index"], np.asarray(x, np.float32))
            interpreter.invoke()
            return _outputs([interpreter.get_tensor(o["index"]) for o in outputs])

        return run
    if fmt == "saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(artefact))
        def serve(x):
            out = loaded.serve(np.asarray(x, np.float32))
            return _outputs([o.numpy() for o in out] if isinstance(out, (list, tuple)) else [out.numpy()])

        return serve
    raise UserError(f"Unknown format '{fmt}'.")


def _outputs(values: list) -> np.ndarray | list[np.ndarray]:
    """One output as an array, several (probabilities, then the OOD score) as a list, as Keras answers."""
    return values[0] if len(values) == 1 else values


def _litert_interpreter(artefact: Path):
    """LiteRT's own interpreter (ai-edge-litert) where installed; TensorFlow's tf.lite, deprecated, otherwise."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import warnings

        import tensorflow as tf

        with warnings.catch_warnings():  # tf.lite.Interpreter says it is deprecated in favour of ai-edge-litert
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter(model_path=str(artefact))
    return Interpreter(model_path=str(artefact))
