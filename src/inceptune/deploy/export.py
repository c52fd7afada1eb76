"""`export`: a run's model for other runtimes, checked against Keras before it is kept.

    model.keras -> serving_model (fixed-size pixels in: no resize layer; the head's
                   feature standardisation folded into its first Dense layer)
        -> saved_model | onnx | openvino | litert   (keras.Model.export)
        -> parity on real images of the run: max |p - p_keras| <= 1e-4, same top-1
        -> RUN/export/<format>/ with labels.json and export.json

Why the serving model differs from model.keras, without changing its answers:
the antialiased resize inside model.keras (TensorFlow's ScaleAndTranslate)
has no ONNX or OpenVINO equivalent, so inceptune resizes before the runtime
with that very op (`data.pipeline.resize_image`), as `predict` always does;
and exporters turn the Normalization layer's statistics into graph inputs,
so they are folded into the next Dense layer: Dense(W, b) of (x - m) / s is
Dense(W / s, b - (m / s) W), exact up to rounding.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import keras
import numpy as np

from inceptune import console
from inceptune.atomic import atomic_write_json
from inceptune.data.dataset import read_manifest
from inceptune.data.images import load_image
from inceptune.data.pipeline import resize_image
from inceptune.errors import ImageError, UserError
from inceptune.models.classifier import class_probabilities
from inceptune.runs import RunFolder

FILES = {"saved_model": "saved_model", "onnx": "model.onnx", "openvino": "model.xml", "litert": "model.tflite"}
KERAS_FORMAT = {"saved_model": "tf_saved_model", "onnx": "onnx", "openvino": "openvino", "litert": "litert"}
TOLERANCE = 1e-4
PARITY_IMAGES = 16


def serving_model(model: keras.Model, image_size: int) -> keras.Model:
    """(S, S, 3) pixels -> probabilities: model.keras without its Resizing layer, Normalization folded."""
    layers = model.layers
    start = next(i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Resizing)) + 1
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    x, pending = inputs, None
    for layer in layers[start:]:
        if isinstance(layer, keras.layers.Normalization):
            pending = layer  # folded into the next Dense layer
        elif isinstance(layer, keras.layers.Dropout):
            continue  # identity at inference
        elif isinstance(layer, keras.layers.Dense) and pending is not None:
            x = _folded_dense(pending, layer)(x)
            pending = None
        else:
            x = layer(x)
    return keras.Model(inputs, x, name="inceptune_serving")


def _folded_dense(norm: keras.layers.Normalization, dense: keras.layers.Dense) -> keras.layers.Dense:
    mean = np.asarray(norm.mean, np.float64).reshape(-1)
    scale = np.maximum(np.sqrt(np.asarray(norm.variance, np.float64).reshape(-1)), keras.config.epsilon())
    kernel, bias = (np.asarray(w, np.float64) for w in dense.get_weights())
    folded = keras.layers.Dense(dense.units, activation=dense.activation, name=f"{dense.name}_folded")
    folded.build((None, kernel.shape[0]))
    folded.set_weights([(kernel / scale[:, None]).astype(np.float32),
                        (bias - (mean / scale) @ kernel).astype(np.float32)])
    return folded


def export(run: str, fmt: str, out: str | None = None) -> dict:
    """Export a run's model and check it against Keras on the run's own images.

    Examples:
        >>> inceptune.export("runs/flowers", "onnx")
        {'format': 'onnx', 'path': 'runs/flowers/export/onnx/model.onnx', 'max_abs_diff': 2.3e-07, ...}
    """
    if fmt not in FILES:
        raise UserError(f"Unknown format '{fmt}'; expected one of {', '.join(FILES)}.")
    folder = RunFolder.open(run)
    image_size = int(folder.config["image_size"])
    model = folder.load_model()
    target = Path(out) if out else folder.path / "export" / fmt
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    artefact = target / FILES[fmt]
    start = time.perf_counter()
    try:
        serving = serving_model(model, image_size)
        serving(np.zeros((1, image_size, image_size, 3), "float32"))  # exporters want a model that has run
        serving.export(str(artefact), format=KERAS_FORMAT[fmt], verbose=False)
    except ImportError as exc:
        shutil.rmtree(target)
        raise UserError(f"Exporting to {fmt} needs {exc.name or 'an extra package'}: "
                        f"pip install 'inceptune[{fmt}]'.") from None
    seconds = time.perf_counter() - start
    pixels = _parity_images(folder, image_size)
    expected = class_probabilities(model.predict(pixels, verbose=0))
    from inceptune.deploy.runtimes import load_runtime

    got = load_runtime(fmt, artefact)(pixels)
    diff = float(np.abs(got - expected).max())
    agree = float((got.argmax(axis=1) == expected.argmax(axis=1)).mean())
    report = {"format": fmt, "path": str(artefact), "image_size": image_size, "images_checked": len(pixels),
              "max_abs_diff": diff, "tolerance": TOLERANCE, "top1_agreement": agree,
              "seconds": round(seconds, 1)}
    if diff > TOLERANCE or agree < 1.0:
        shutil.rmtree(target)
        raise UserError(f"The {fmt} export differs from Keras (max probability difference {diff:.2e}, "
                        f"top-1 agreement {agree:.0%}), so it was not kept.")
    atomic_write_json(target / "labels.json", folder.read_json("labels.json"))
    atomic_write_json(target / "export.json", report)
    console.info(f"Exported {fmt} to {artefact}: parity on {len(pixels)} images, max difference {diff:.1e} "
                 f"(tolerance {TOLERANCE:g}), top-1 agreement {agree:.0%}.")
    return report


def _parity_images(folder: RunFolder, image_size: int) -> np.ndarray:
    """Up to PARITY_IMAGES real images of the run (test split first), resized as predict does."""
    records = read_manifest(folder.file("manifest.csv")) if folder.file("manifest.csv").is_file() else []
    records = sorted(records, key=lambda r: {"test": 0, "val": 1}.get(r.split, 2))
    images = []
    for r in records:
        try:
            images.append(resize_image(load_image(r.path), image_size))
        except ImageError:
            continue
        if len(images) == PARITY_IMAGES:
            break
    if not images:
        console.warn("the run's images are not on this machine; checking parity on generated images")
        rng = np.random.default_rng(0)
        images = list(rng.uniform(0, 255, (PARITY_IMAGES, image_size, image_size, 3)).astype("float32"))
    return np.stack(images).astype("float32")
