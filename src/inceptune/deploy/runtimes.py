"""Runtimes that run an exported model: fixed-size pixels (N, S, S, 3) in, the model's outputs out
(callers turn them into class probabilities, `models.classifier.class_probabilities`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from inceptune.errors import UserError

RUNTIMES = ("auto", "keras", "onnx", "openvino")  # also a quantized export by its folder name: onnx-int8, ...
EXPORTED = ("onnx", "openvino", "litert")  # runnable exports; litert mainly for checking phone builds
AUTO_ORDER = ("openvino", "onnx")  # fastest first on CPUs (see BENCHMARKS.md); auto never picks a quantized one


def load_runtime(fmt: str, artefact: Path) -> Callable[[np.ndarray], np.ndarray]:
    artefact = Path(artefact)
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(artefact), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: np.asarray(x, np.float32)})[0]
    if fmt == "openvino":
        import openvino as ov

        # FP32 explicitly: on CPUs with bfloat16 units OpenVINO otherwise computes in bf16 (~1e-2 off).
        compiled = ov.Core().compile_model(str(artefact), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        return lambda x: compiled(np.asarray(x, np.float32))[0]
    if fmt == "litert":
        import tensorflow as tf

        interpreter = tf.lite.Interpreter(model_path=str(artefact))

        def run(x):
            inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
            interpreter.resize_tensor_input(inp["index"], x.shape)
            interpreter.allocate_tensors()
            interpreter.set_tensor(inp["index"], np.asarray(x, np.float32))
            interpreter.invoke()
            return interpreter.get_tensor(out["index"])

        return run
    if fmt == "saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(artefact))
        return lambda x: loaded.serve(np.asarray(x, np.float32)).numpy()
    raise UserError(f"Unknown format '{fmt}'.")


def run_runtime(run_path: Path, runtime: str) -> tuple[str, Callable[[np.ndarray], np.ndarray]] | None:
    """(name, infer) for `runtime` from RUN/export/, or None for Keras itself.

    `auto` takes the fastest export present whose runtime is installed, else Keras.
    """
    if runtime == "keras":
        return None
    fmt, _, quantize = runtime.partition("-")
    if runtime != "auto" and (fmt not in EXPORTED or quantize not in ("", "fp16", "int8")):
        raise UserError(f"--runtime must be one of {', '.join(RUNTIMES)} (or a quantized export such as onnx-int8), "
                        f"got {runtime}.")
    from inceptune.deploy.export import FILES

    for name in (AUTO_ORDER if runtime == "auto" else (runtime,)):
        fmt = name.partition("-")[0]
        artefact = run_path / "export" / name / FILES[fmt]
        if not artefact.exists():
            if runtime != "auto":
                how = f"--format {fmt}" + (f" --quantize {quantize}" if quantize else "")
                raise UserError(f"{run_path} has no {name} export; run `inceptune export {run_path} {how}` first.")
            continue
        try:
            return name, load_runtime(fmt, artefact)
        except ImportError:
            if runtime != "auto":
                raise UserError(f"--runtime {name} needs its package: pip install 'inceptune[{fmt}]'.") from None
    return None
