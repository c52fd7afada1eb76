"""`train --from MODEL`: continue from a model saved earlier.

MODEL is an inceptune run folder, a `.keras` file, or a legacy HDF5 full
model as the classic recipes save it (`model.save('retrained_inception_model.h5')`:
InceptionV3's layers inline, then GAP + Dense layers). Its Inception-v3 base
becomes the starting weights (written once to a weights file under the
cache, keyed by the model file's content, so the feature cache works as for
any weights file). Its head is kept when it is an inceptune head for the
same classes (run folder, or a .keras with labels.json beside it), and
replaced otherwise.

What is trusted: `.keras` files load in Keras' safe mode. A legacy `.h5`
stores its architecture as JSON and its weights as arrays; inceptune reads
the JSON first and refuses, unless --unsafe, a file whose layers carry
Python code (Lambda layers store marshalled bytecode) or are not Keras'
own built-in layers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import keras

from inceptune import console
from inceptune.architectures.inception_v3 import first_conv_width, inception_v3_base
from inceptune.errors import UserError
from inceptune.models.backbone import save_backbone_weights
from inceptune.models.parts import ModelParts, model_parts
from inceptune.models.weights import Weights, file_fingerprint
from inceptune.runs import load_keras_model

CODE_LAYERS = ("Lambda", "TFOpLambda", "SlicingOpLambda")


@dataclass
class Source:
    weights: Weights  # the source's Inception-v3 base, as a weights file
    head: list[list] | None  # weights of an inceptune head to keep (same classes), else None
    classes: list[str] | None
    description: str


def load_source(spec: str, classes: list[str], cache_root: Path, unsafe: bool = False) -> Source:
    """Resolve --from: the base as a `Weights`, and the head when it can be kept for `classes`."""
    path = Path(spec).expanduser()
    labels = None
    if path.is_dir():
        if not (path / "model.keras").is_file():
            raise UserError(f"--from {spec} is a folder without model.keras; give a run folder or a model file.")
        labels, path = path / "labels.json", path / "model.keras"
    elif not path.is_file():
        raise UserError(f"--from {spec} does not exist; give a run folder, a .keras file or a legacy .h5 model.")
    else:
        labels = path.with_name("labels.json")
    if path.suffix.lower() in (".h5", ".hdf5"):
        check_hdf5_trust(path, unsafe)
        model = _load_h5(path, unsafe)
        kind = "legacy HDF5 model"
    else:
        model = load_keras_model(path, unsafe)
        kind = "Keras model"
    source_classes = json.loads(labels.read_text())["classes"] if labels and labels.is_file() else None
    fingerprint = file_fingerprint(path.resolve())
    target = Path(cache_root).expanduser() / "from" / f"{fingerprint[:24]}.weights.h5"
    base = _inception_base(model, spec)
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.stem}.tmp.weights.h5")
        save_backbone_weights(base, tmp, first_conv_width(base))
        tmp.replace(target)
    head = None
    same = source_classes is not None and source_classes == list(classes)
    parts = _parts(model)
    if same and parts is not None and parts.inception_head:
        head = parts.head_weights()
    verdict = ("keeps its head (same classes)" if head is not None else
               "new head (the classes differ)" if source_classes is not None and not same else
               "new head (its classes are not known)" if source_classes is None else
               "new head (not an inceptune head)")
    description = f"{kind} {spec}: its Inception-v3 base, {verdict}"
    console.info(f"Continuing from the {description}.")
    return Source(Weights(f"from:{spec}", target, f"from-{fingerprint}"), head, source_classes, description)


def check_hdf5_trust(path: Path, unsafe: bool) -> None:
    """Refuse (unless unsafe) a legacy HDF5 model whose JSON config has code-carrying or unknown layers."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            config = f.attrs.get("model_config")
    except OSError as exc:
        raise UserError(f"{path} could not be read as an HDF5 model ({exc}).") from None
    if config is None:
        raise UserError(f"{path} holds weights only, not a full model; pass it as --weights instead of --from.")
    config = json.loads(config.decode() if isinstance(config, bytes) else config)
    found = set()

    def walk(node):
        if isinstance(node, dict):
            if "class_name" in node and isinstance(node.get("config"), dict):
                found.add(node["class_name"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    code = sorted(found & set(CODE_LAYERS))
    unknown = sorted(n for n in found - set(CODE_LAYERS) if not _is_builtin(n))
    if (code or unknown) and not unsafe:
        what = f"{', '.join(code)} layers (Python code)" if code else f"layers Keras does not know ({', '.join(unknown)})"
        raise UserError(f"{path} contains {what}, so inceptune refuses to load it; pass --unsafe only if you trust "
                        "its source.")


def _is_builtin(class_name: str) -> bool:
    if class_name in ("Functional", "Model", "Sequential", "InputLayer") or class_name.startswith("__"):
        return True  # "__keras_tensor__" and the like: Keras' own serialization markers
    return hasattr(keras.layers, class_name) or hasattr(keras.initializers, class_name) or \
        hasattr(keras.regularizers, class_name) or hasattr(keras.constraints, class_name) or \
        class_name in ("DTypePolicy", "Policy", "FloatDTypePolicy")


def _load_h5(path: Path, unsafe: bool) -> keras.Model:
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as exc:  # legacy files fail in many ways
        raise UserError(f"{path} could not be loaded as a Keras model ({str(exc).splitlines()[0]}).") from None


def _parts(model: keras.Model) -> ModelParts | None:
    try:
        return model_parts(model)
    except ValueError:  # the seeds' models: InceptionV3's layers inline, no nested backbone
        return None


def _inception_base(model: keras.Model, spec: str) -> keras.Model:
    """The InceptionV3 part of `model`, as a model with InceptionV3's weight order (no top); a narrow
    Inception-v3 (models/backbone.py) as one of its width."""
    candidates = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    try:
        candidates.append(keras.Model(model.inputs, model.get_layer("mixed10").output))
    except ValueError:
        pass
    fresh_of_width: dict[float, keras.Model] = {}
    for candidate in candidates:
        if not any(isinstance(layer, keras.layers.Conv2D) for layer in candidate.layers):
            continue
        width = first_conv_width(candidate)
        if width not in fresh_of_width:
            fresh_of_width[width] = (keras.applications.InceptionV3(include_top=False, weights=None) if width == 1.0
                                     else inception_v3_base((None, None, 3), width))
        fresh = fresh_of_width[width]
        expected = [tuple(w.shape) for w in fresh.weights]
        inner = candidate
        if any(layer.name == "mixed10" for layer in candidate.layers) and len(candidate.weights) != len(expected):
            inner = keras.Model(candidate.inputs, candidate.get_layer("mixed10").output)
        if [tuple(w.shape) for w in inner.weights] == expected:
            fresh.set_weights(inner.get_weights())
            return fresh
    tops = [c.layers[-1].name for c in candidates if c.layers and c.layers[-1].name.startswith("mixed")]
    if tops and tops[0] != "mixed10":
        raise UserError(f"--from {spec} stops at {tops[0]} (its recipe used {tops[0]} features), so it has no "
                        "weights above it to continue from; train it with --feature-block mixed10 to continue it.")
    raise UserError(f"--from {spec} has no Inception-v3 base (its layers up to mixed10 do not match InceptionV3).")
