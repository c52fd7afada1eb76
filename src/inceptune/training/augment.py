"""Data augmentation as Keras preprocessing layers, and cached augmented views for the frozen phase.

Policies (`--augment`, vocabulary/policies.py) name the seeds' ImageDataGenerator
set (rotation, width/height shift, shear, zoom, horizontal flip) plus
brightness and contrast; here they become random Keras layers.

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
from dataclasses import replace

import keras

from inceptune.data.scan import ImageRecord
from inceptune.vocabulary.policies import policy_key


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


def view_records(records: list[ImageRecord], params: dict, views: int, seed: int) -> list[list[ImageRecord]]:
    """For each view 1..K, the training records as that view: same file, its own cache key."""
    key = policy_key(params, seed)
    return [[replace(r, sha256=hashlib.sha256(f"{r.sha256}:aug:{key}:{v}".encode()).hexdigest()) for r in records]
            for v in range(1, views + 1)]
