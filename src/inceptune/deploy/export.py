"""`export`: a run's model for other runtimes, checked against Keras before it is kept.

    model.keras -> serving_model (fixed-size pixels in: no resize layer; the head's
                   feature standardisation folded into its first Dense layer)
        -> saved_model | onnx | openvino | litert   (keras.Model.export; OpenVINO from the run's checked
           ONNX file when there is one, else straight from the serving model; the SavedModel in a TF Serving
           version folder, with a second signature that takes encoded image files: deploy/saved_model.py);
           ONNX and OpenVINO outputs named `probabilities` and `ood_score`
        -> the FP32 Keras model, the run's photos and Keras' answers on them loaded once for every export
           of one `train` (deploy/reference.py)
        -> triton: a Triton model repository around the checked ONNX export (deploy/triton.py)
        -> LiteRT: the labels and the input's normalisation written into the file (deploy/litert_metadata.py)
        -> optionally quantized (fp16 | bf16 | int8, deploy/quantize.py), from RUN/export/<format>/ when that
           is a checked FP32 export of the same model.keras (export.json records its sha256)
        -> parity on real images of the run: max |p - p_keras| <= 1e-4 (FP32; the OOD score too), same top-1
           (wherever Keras' top-1 leads by more than twice the tolerance; see quantize.py), on val and train
           photos (never test); a bf16 or int8 ONNX/OpenVINO export is checked instead on the val photos, on
           accuracy (a drop bound and an exact McNemar test) and on every output against Keras: top-1,
           probabilities and the "none of these" decision (deploy/accuracy.py)
        -> RUN/export/<format>[-<quantize>]/ with labels.json and export.json

Why the serving model differs from model.keras, without changing its answers:
the antialiased resize inside model.keras (TensorFlow's ScaleAndTranslate)
has no ONNX or OpenVINO equivalent, so inceptune resizes before the runtime
with that very op (`data.pipeline.resize_image`), as `predict` always does;
and exporters turn the Normalization layer's statistics into graph inputs,
so they are folded into the next Dense layer: Dense(W, b) of (x - m) / s is
Dense(W / s, b - (m / s) W), exact up to rounding.
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from pathlib import Path

import keras
import numpy as np

from inceptune import console
from inceptune.atomic import atomic_write_json
from inceptune.data.pipeline import resize_image
from inceptune.deploy.accuracy import outputs_check
from inceptune.deploy.litert_metadata import add_litert_metadata, litert_description
from inceptune.deploy.protocols import OOD_SCORE, PROBABILITIES, model_name
from inceptune.deploy.quantize import (TOLERANCES, check_quantize, decisive, litert_options, quantize_checked,
                                       quantize_file)
from inceptune.deploy.reference import PARITY_IMAGES, PARITY_SPLITS, Reference, run_files
from inceptune.deploy.saved_model import BYTES_INPUT, write_saved_model
from inceptune.deploy.triton import write_repository
from inceptune.errors import UserError
from inceptune.features.runtime import openvino_model
from inceptune.inference.runtimes import CHECKED, FILES, load_runtime
from inceptune.models.classifier import class_probabilities
from inceptune.models.ood import split_outputs
from inceptune.models.parts import model_parts
from inceptune.models.weights import file_fingerprint
from inceptune.runs import RunFolder
from inceptune.vocabulary.limits import MAX_ACCURACY_DROP

FORMATS = ("saved_model", "onnx", "openvino", "litert", "triton")
KERAS_FORMAT = {"saved_model": "tf_saved_model", "onnx": "onnx", "litert": "litert"}  # OpenVINO: _convert
OUTPUT_NAMES = (PROBABILITIES, OOD_SCORE)  # an export's outputs, in model.keras' order (the OOD score when it has one)
CALIBRATION_IMAGES = 32  # fp16 and LiteRT int8
# ONNX and OpenVINO int8: calibration photos from the train split (NNCF's default is 300; 100 in batches of
# CALIBRATION_BATCH cost half as much and passed the every-output check where 300 one at a time did not: quantize.py)
INT8_CALIBRATION_IMAGES = 100


def serving_model(model: keras.Model, image_size: int) -> keras.Model:
    """(S, S, 3) pixels -> probabilities (and the OOD score, when model.keras answers one): model.keras without
    its Resizing layer, Normalization folded."""
    parts = model_parts(model)
    after_resize = [layer for layer in parts.preprocess if layer is not parts.resize] + [parts.backbone, *parts.head]
    pooling = parts.head[0] if parts.head else None
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    x, pending, features = inputs, None, None
    for layer in after_resize:
        if layer is pooling:
            x = features = layer(x)
            continue
        if isinstance(layer, keras.layers.Normalization):
            pending = layer  # folded into the next Dense layer
        elif isinstance(layer, keras.layers.Dropout):
            continue  # identity at inference
        elif isinstance(layer, keras.layers.Dense) and pending is not None:
            x = _folded_dense(pending, layer)(x)
            pending = None
        else:
            x = layer(x)
    outputs = x if parts.ood is None else [x, parts.ood(features)]
    return keras.Model(inputs, outputs, name="inceptune_serving")


def _folded_dense(norm: keras.layers.Normalization, dense: keras.layers.Dense) -> keras.layers.Dense:
    mean = np.asarray(norm.mean, np.float64).reshape(-1)
    scale = np.maximum(np.sqrt(np.asarray(norm.variance, np.float64).reshape(-1)), keras.config.epsilon())
    kernel, bias = (np.asarray(w, np.float64) for w in dense.get_weights())
    folded = keras.layers.Dense(dense.units, activation=dense.activation, name=f"{dense.name}_folded")
    folded.build((None, kernel.shape[0]))
    folded.set_weights([(kernel / scale[:, None]).astype(np.float32),
                        (bias - (mean / scale) @ kernel).astype(np.float32)])
    return folded


def export(run: str, fmt: str, out: str | None = None, quantize: str | None = None,
           max_accuracy_drop: float = MAX_ACCURACY_DROP, reference: Reference | None = None,
           candidate: bool = False) -> dict:
    """Export a run's model (optionally quantized: fp16, bf16 or int8) and check it on the run's images: an FP32 or
    fp16 export against Keras, a bf16 or int8 one on accuracy (at most `max_accuracy_drop` lost on the held-out
    photos) and on every output. `reference` shares the loaded model and its answers between exports;
    `candidate`: one of `train --export auto`'s, which says what it kept in the end.

    Examples:
        >>> inceptune.export("runs/flowers", "onnx")
        {'format': 'onnx', 'path': 'runs/flowers/export/onnx/model.onnx', 'max_abs_diff': 2.3e-07, ...}
        >>> inceptune.export("runs/flowers", "openvino", quantize="int8")["accuracy"]["drop"]
        0.0
    """
    if fmt == "triton":
        return _triton(run, out, quantize)
    if fmt not in FILES:
        raise UserError(f"Unknown format '{fmt}'; expected one of {', '.join(FORMATS)}.")
    check_quantize(fmt, quantize)
    if not 0 <= max_accuracy_drop < 1:
        raise UserError(f"--max-accuracy-drop is a fraction between 0 and 1 (0.005 is half a point), got "
                        f"{max_accuracy_drop}.")
    reference = reference or Reference.open(run)
    folder = reference.folder
    image_size = folder.image_size
    checked = quantize in CHECKED and fmt != "litert"  # on the held-out photos, every output (LiteRT: tolerance)
    if checked and reference.held is None:
        raise UserError(f"The photos of {run}'s val split are not on this machine (or it has none), so a {quantize} "
                        "export cannot be checked; export FP32 or fp16 instead.")
    digest = reference.digest
    reuse = _checked_fp32(folder, fmt, digest) if quantize and fmt != "litert" else None
    via_onnx = _checked_fp32(folder, "onnx", digest) if fmt == "openvino" and reuse is None else None
    name = fmt if quantize is None else f"{fmt}-{quantize}"
    target = Path(out) if out else folder.path / "export" / name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    artefact = target / FILES[fmt]
    if checked:
        calibration = lambda: reference.images(("train",), INT8_CALIBRATION_IMAGES)  # noqa: E731
    else:
        calibration = lambda: reference.images(("train", "val", "test"), CALIBRATION_IMAGES)  # noqa: E731
    start, accuracy, checked_outputs = time.perf_counter(), None, None
    try:
        fp32 = reuse or (artefact if quantize is None or fmt == "litert" else target / "fp32" / FILES[fmt])
        if reuse is None:  # convert; a quantized variant starts from the run's checked FP32 export when there is one
            fp32.parent.mkdir(exist_ok=True)
            _convert(reference, fmt, fp32, via_onnx,
                     litert_options(quantize, calibration) if fmt == "litert" else {})
        if fp32 != artefact and checked:
            accuracy, checked_outputs = quantize_checked(fmt, quantize, fp32, artefact, reference, calibration,
                                                         max_accuracy_drop)
        elif fp32 != artefact:
            quantize_file(fmt, quantize, fp32, artefact, calibration)
        if fp32 != artefact and reuse is None:
            shutil.rmtree(fp32.parent)
    except ImportError as exc:
        shutil.rmtree(target)
        raise UserError(f"Exporting to {fmt} needs {exc.name or 'an extra package'}: "
                        f"pip install 'inceptune[{fmt}]'.") from None
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    if fmt == "litert":  # labels and input normalisation travel inside the file; the parity check reads it as is
        add_litert_metadata(artefact, litert_description(folder.read_json("labels.json"), image_size,
                                                         folder.ood_threshold is not None))
    seconds = time.perf_counter() - start
    if accuracy is not None and not accuracy["passed"]:
        shutil.rmtree(target)
        test = accuracy["mcnemar"]
        raise UserError(f"The {name} export loses {accuracy['drop']:.2%} {accuracy['metric']} on "
                        f"{accuracy['images']} held-out photos ({accuracy['fp32']:.2%} -> {accuracy['quantized']:.2%}; "
                        f"at most {max_accuracy_drop:.2%} allowed; {test['only_fp32_right']} photos right only in FP32, "
                        f"{test['only_quantized_right']} only in {quantize}, McNemar p = {test['p_value']:.3g}), so it "
                        "was not kept.")
    outputs = None
    if accuracy is not None:  # and every output against the FP32 Keras model: top-1, probabilities, "none of these"
        outputs = outputs_check(reference.held, reference.keras_held, checked_outputs, folder.ood_threshold)
        if not outputs["passed"]:
            shutil.rmtree(target)
            raise UserError(f"The {name} export answers unlike the FP32 model on {outputs['images']} held-out photos "
                            f"({'; '.join(outputs['failed'])}), so it was not kept.")
    pixels = reference.parity
    multilabel = folder.task == "multilabel"
    expected, expected_ood = split_outputs(reference.keras_parity)
    got, got_ood = split_outputs(load_runtime(fmt, artefact, quantize)(pixels))
    expected, got = class_probabilities(expected, multilabel), class_probabilities(got, multilabel)
    diff = float(np.abs(got - expected).max())
    ood_diff = None if expected_ood is None else (float(np.abs(got_ood - expected_ood).max()) if got_ood is not None
                                                  else float("inf"))
    if ood_diff is not None and quantize is None:  # an FP32 export answers the OOD score exactly too
        diff = max(diff, ood_diff)
    same = got.argmax(axis=1) == expected.argmax(axis=1)
    tolerance = None if checked else TOLERANCES[quantize]
    clear = decisive(expected, tolerance if tolerance is not None else TOLERANCES[quantize])
    agree, clear_agree = float(same.mean()), float(same[clear].mean()) if clear.any() else 1.0
    report = {"format": fmt, "quantize": quantize, "path": str(artefact), "image_size": image_size,
              "bytes": sum(f.stat().st_size for f in target.rglob("*") if f.is_file()),
              "images_checked": len(pixels), "max_abs_diff": diff, "tolerance": tolerance,
              "ood_max_abs_diff": ood_diff,  # within the tolerance for FP32; recorded, not checked, when quantized
              "top1_agreement": agree, "decisive_images": int(clear.sum()), "decisive_top1_agreement": clear_agree,
              "accuracy": accuracy,  # an int8 ONNX/OpenVINO export's check on the held-out photos; None otherwise
              "outputs": outputs,  # and its every-output check against the FP32 Keras model there
              # "none of these" above this score: the run's, or an int8 export's own (fitted on its val scores)
              "ood_threshold": outputs["ood_threshold"] if outputs else folder.ood_threshold,
              "seconds": round(seconds, 1), "model_sha256": digest,
              **({"quantized_from": str(reuse)} if reuse else {}),
              **({"converted_from": str(via_onnx)} if via_onnx else {})}
    if fmt == "saved_model":  # the signature TF Serving uses: encoded files in, decoded and resized inside
        report["bytes_max_abs_diff"] = _bytes_signature_diff(reference, artefact, multilabel)
        diff = max(diff, report["bytes_max_abs_diff"])
    if tolerance is not None and (diff > tolerance or clear_agree < 1.0):
        shutil.rmtree(target)
        raise UserError(f"The {name} export differs from Keras (max probability difference {diff:.2e} against "
                        f"{tolerance:g} allowed, top-1 agreement {clear_agree:.0%} on the {int(clear.sum())} images "
                        "Keras calls clearly), so it was not kept.")
    atomic_write_json(target / "labels.json", folder.read_json("labels.json"))
    atomic_write_json(target / "export.json", report)
    # a candidate of `train --export auto` may be removed a moment later: auto_export says what it kept, and where
    lead = (f"{name} passed its checks ({report['bytes'] / 2**20:.1f} MiB)" if candidate else
            f"Exported {name} to {artefact} ({report['bytes'] / 2**20:.1f} MiB)")
    if accuracy is not None:
        drop = accuracy["drop"]
        change = "no change" if abs(drop) < 1e-12 else (f"a drop of {drop:.2%}" if drop > 0 else f"a gain of {-drop:.2%}")
        console.info(f"{lead}: {accuracy['metric']} on "
                     f"{accuracy['images']} held-out photos {accuracy['fp32']:.2%} (FP32) -> "
                     f"{accuracy['quantized']:.2%} ({quantize}), {change} (at most a drop of "
                     f"{max_accuracy_drop:.2%}; McNemar p = {accuracy['mcnemar']['p_value']:.3g}; {accuracy['method']}); "
                     f"against Keras, top-1 agreement {outputs['top1_agreement']:.1%}, largest probability "
                     f"difference {outputs['max_abs_diff']:.3f}"
                     + ("" if outputs["unknown_agreement"] is None else
                        f", the same 'none of these' on {outputs['unknown_agreement']:.1%}") + ".")
    else:
        console.info(f"{lead}: parity on {len(pixels)} "
                     f"images, max difference {diff:.1e} (tolerance {tolerance:g}), top-1 agreement {agree:.0%} "
                     f"({clear_agree:.0%} of the {int(clear.sum())} clear calls).")
    return report


def _convert(reference: Reference, fmt: str, path: Path, via_onnx: Path | None, options: dict) -> None:
    """The FP32 file of `fmt` at `path`, its outputs named (OUTPUT_NAMES) where the format has names."""
    if via_onnx is not None:  # OpenVINO reads the run's checked ONNX file, names and all: quick, and little memory
        import openvino as ov

        ov.save_model(ov.convert_model(str(via_onnx)), str(path), compress_to_fp16=False)
        return
    serving = serving_model(reference.model, reference.folder.image_size)
    if fmt == "openvino":  # straight from the serving model: a few seconds, where ONNX takes tf2onnx's minute
        import openvino as ov

        converted = openvino_model(serving, reference.folder.image_size)
        for tensor, name in zip(converted.outputs, OUTPUT_NAMES):
            tensor.get_tensor().set_names({name})
        converted.inputs[0].get_tensor().set_names({"pixels"})
        ov.save_model(converted, str(path), compress_to_fp16=False)
        return
    _keras_export(serving, fmt, path, reference.folder.image_size, options)
    if fmt == "onnx":
        _name_onnx_outputs(path)


def _name_onnx_outputs(path: Path) -> None:
    """Rename the ONNX file's outputs (tf2onnx's Identity:0, Identity_1:0) to OUTPUT_NAMES, in model.keras' order."""
    import onnx

    model = onnx.load(str(path))
    renamed = {output.name: name for output, name in zip(model.graph.output, OUTPUT_NAMES)}
    for node in model.graph.node:
        node.output[:] = [renamed.get(o, o) for o in node.output]
        node.input[:] = [renamed.get(i, i) for i in node.input]
    for output in model.graph.output:
        output.name = renamed[output.name]
    onnx.save(model, str(path))


def _keras_export(serving: keras.Model, fmt: str, path: Path, image_size: int, options: dict) -> None:
    serving(np.zeros((1, image_size, image_size, 3), "float32"))  # exporters want a model that has run
    if fmt == "saved_model":
        return write_saved_model(serving, path, image_size)
    with warnings.catch_warnings():  # Keras' tf2onnx shim probes np.object, which NumPy 2 warns about
        warnings.filterwarnings("ignore", message="In the future `np.object`", category=FutureWarning)
        serving.export(str(path), format=KERAS_FORMAT[fmt], verbose=False, **options)


def _checked_fp32(folder: RunFolder, fmt: str, digest: str) -> Path | None:
    """RUN/export/FMT's file when it is a parity-checked FP32 export of this very model.keras, else None."""
    base = folder.path / "export" / fmt
    try:
        report = json.loads((base / "export.json").read_text())
    except (OSError, ValueError):
        return None
    fresh = report.get("quantize") is None and report.get("model_sha256") == digest
    return base / FILES[fmt] if fresh and (base / FILES[fmt]).is_file() else None


def _bytes_signature_diff(reference: Reference, artefact: Path, multilabel: bool) -> float:
    """Largest probability difference between the SavedModel's bytes signature on the run's image files
    and model.keras on the same files decoded and resized as `predict` does them (0 without such files)."""
    import tensorflow as tf

    files = [(path, pixels) for path, pixels in run_files(reference.folder, PARITY_SPLITS, PARITY_IMAGES)
             if Path(path).suffix.lower() in (".jpg", ".jpeg", ".png")]
    if not files:
        return 0.0  # nothing to decode here: the pixels signature's parity stands alone
    signature = tf.saved_model.load(str(artefact)).signatures["serving_default"]
    data = tf.constant([Path(path).read_bytes() for path, _ in files])
    got = signature(**{BYTES_INPUT: data})["probabilities"].numpy()
    pixels = np.stack([resize_image(p, reference.folder.image_size) for _, p in files])
    expected, _ = split_outputs(reference.model.predict(pixels, verbose=0))
    return float(np.abs(class_probabilities(got, multilabel) - class_probabilities(expected, multilabel)).max())


def _triton(run: str, out: str | None, quantize: str | None) -> dict:
    """A Triton model repository from the run's checked FP32 ONNX export (made first when there is none)."""
    if quantize:
        raise UserError("--format triton writes the FP32 ONNX model; quantize the ONNX export instead.")
    folder = RunFolder.open(run)
    onnx_file = _checked_fp32(folder, "onnx", file_fingerprint(folder.model_path))
    if onnx_file is None:
        export(run, "onnx")
        onnx_file = folder.path / "export" / "onnx" / FILES["onnx"]
    target = Path(out) if out else folder.path / "export" / "triton"
    name = model_name(folder.path.name)
    config = write_repository(onnx_file, target, name, folder.classes)
    report = {"format": "triton", "path": str(config), "model_name": name, "from": str(onnx_file),
              "model_sha256": file_fingerprint(folder.model_path), "image_size": folder.image_size}
    atomic_write_json(target / "export.json", report)
    console.info(f"Wrote a Triton model repository to {target} (model '{name}', ONNX Runtime backend): "
                 f"tritonserver --model-repository {target}")
    return report
