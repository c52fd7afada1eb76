"""Data augmentation as Keras preprocessing layers, and cached augmented views for the frozen phase.

Policies (`--augment`) name the seeds' ImageDataGenerator set (rotation,
width/height shift, shear, zoom, horizontal flip) plus brightness and
contrast; `--aug KEY=VALUE` overrides one parameter:

    rotation    degrees, either way           shift       fraction of width and height
    shear       shear intensity (RandomShear)  zoom        fraction in or out
    flip        horizontal | vertical | horizontal_and_vertical | none
    brightness  fraction of the 0-255 range    contrast    factor

The base is frozen in phase 1, so an augmented image only matters through
its pooled features. `--aug-views K` runs the base on K augmented views of
each training image once, caches them like the image's own features, and
trains the head on the image plus its K views: 1 + K base passes per
training image in total, however many epochs follow. Phase 2 then augments
on the fly (`--fine-tune-augment online`: the same layers in front of the
whole network, fresh every epoch), or trains on the activations cached with
the views (`views`). Validation and test images are never augmented.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import keras

from inceptune.data.scan import ImageRecord
from inceptune.errors import UserError

POLICIES: dict[str, dict] = {
    "none": {},
    "light": {"rotation": 10, "zoom": 0.1, "flip": "horizontal"},
    # The seeds' ImageDataGenerator(rotation_range=20, width/height_shift_range=0.2, shear_range,
    # zoom_range=0.2, horizontal_flip=True), plus mild photometric changes.
    "default": {"rotation": 20, "shift": 0.2, "shear": 0.1, "zoom": 0.2, "flip": "horizontal",
                "brightness": 0.1, "contrast": 0.1},
    "strong": {"rotation": 30, "shift": 0.25, "shear": 0.2, "zoom": 0.3, "flip": "horizontal",
               "brightness": 0.2, "contrast": 0.3},
}
FLIPS = ("horizontal", "vertical", "horizontal_and_vertical", "none")


def resolve_policy(name: str, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """The parameters of policy `name` with `KEY=VALUE` overrides applied."""
    if name not in POLICIES:
        raise UserError(f"--augment must be one of {', '.join(POLICIES)}, got {name}.")
    params = dict(POLICIES[name])
    known = ("rotation", "shift", "shear", "zoom", "flip", "brightness", "contrast")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in known:
            raise UserError(f"--aug takes KEY=VALUE with KEY one of {', '.join(known)}, got '{item}'.")
        if key == "flip":
            if value not in FLIPS:
                raise UserError(f"--aug flip= takes one of {', '.join(FLIPS)}, got '{value}'.")
            params[key] = value
            continue
        try:
            number = float(value)
        except ValueError:
            raise UserError(f"--aug {key}= takes a number, got '{value}'.") from None
        if number < 0 or (key != "rotation" and number > 1):
            raise UserError(f"--aug {key}= must be between 0 and {'180' if key == 'rotation' else '1'}, got {value}.")
        params[key] = number
    return {k: v for k, v in params.items() if v not in (0, 0.0, "none")}


def build_augmenter(params: dict, seed: int) -> keras.Sequential | None:
    """Random layers for `params` on raw pixels (0-255); None when there is nothing to do."""
    if not params:
        return None
    layers = []
    if "flip" in params:
        layers.append(keras.layers.RandomFlip(params["flip"], seed=seed))
    if "rotation" in params:
        layers.append(keras.layers.RandomRotation(params["rotation"] / 360, fill_mode="reflect", seed=seed + 1))
    if "shift" in params:
        layers.append(keras.layers.RandomTranslation(params["shift"], params["shift"], fill_mode="reflect",
                                                     seed=seed + 2))
    if "shear" in params:
        layers.append(keras.layers.RandomShear(params["shear"], params["shear"], fill_mode="reflect", seed=seed + 3))
    if "zoom" in params:
        layers.append(keras.layers.RandomZoom(params["zoom"], fill_mode="reflect", seed=seed + 4))
    if "brightness" in params:
        layers.append(keras.layers.RandomBrightness(params["brightness"], value_range=(0, 255), seed=seed + 5))
    if "contrast" in params:
        layers.append(keras.layers.RandomContrast(params["contrast"], value_range=(0, 255), seed=seed + 6))
    return keras.Sequential(layers, name="augment")


def policy_key(params: dict, seed: int) -> str:
    return hashlib.sha256(json.dumps([params, seed], sort_keys=True).encode()).hexdigest()[:12]


def view_records(records: list[ImageRecord], params: dict, views: int, seed: int) -> list[list[ImageRecord]]:
    """For each view 1..K, the training records as that view: same file, its own cache key."""
    key = policy_key(params, seed)
    return [[replace(r, sha256=hashlib.sha256(f"{r.sha256}:aug:{key}:{v}".encode()).hexdigest()) for r in records]
            for v in range(1, views + 1)]
