"""Run the frozen backbone once per image and keep what training needs.

One forward pass yields every *kind* of feature asked for: the pooled
output of the last block (phase 1 trains the head on it) and the
activations entering the first unfrozen block (phase 2 fine-tunes the top
blocks on them). Images already in the cache are not decoded or run again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import keras
import numpy as np

from inceptune import console, hooks
from inceptune.data.pipeline import image_batches
from inceptune.data.scan import ImageRecord
from inceptune.errors import UserError
from inceptune.features.cache import FeatureCache
from inceptune.features.runtime import ExtractorRunner
from inceptune.vocabulary.sources import POOLED, parts_of, pooled_kind  # noqa: F401 (pooled_kind: used from here)
from inceptune.models.backbone import boundary_layer
from inceptune.models.classifier import inception_scale
from inceptune.settings.schema import DEFAULTS

POOLINGS = ("avg", "max")  # what one stored kind pools with (avgmax sources read both)


def activations_kind(block: str) -> str:
    """Cache kind of the activations that enter `block`."""
    return f"before-{block}"


@dataclass
class ExtractionStats:
    images: int = 0
    from_cache: int = 0
    computed: int = 0
    seconds: float = 0.0
    runtime: str | None = None  # what ran the backbone at the end (features/runtime.py); None when nothing ran
    failed: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"images": self.images, "from_cache": self.from_cache, "computed": self.computed,
                "seconds": round(self.seconds, 3), "runtime": self.runtime, "failed": [list(f) for f in self.failed]}


def build_extractor(backbone: keras.Model, kinds: list[str]) -> keras.Model:
    """Raw pixels (S, S, 3) -> {kind: features} for the given kinds."""
    outputs = {}
    for kind in kinds:
        if kind == POOLED:
            outputs[kind] = keras.layers.GlobalAveragePooling2D()(backbone.output)
        elif kind.startswith(("avg-pool-", "max-pool-")):
            pooling, _, block = kind.split("-", 2)
            pool = keras.layers.GlobalAveragePooling2D() if pooling == "avg" else keras.layers.GlobalMaxPooling2D()
            outputs[kind] = pool(backbone.get_layer(block).output)
        else:
            outputs[kind] = boundary_layer(backbone, kind.removeprefix("before-")).output
    inner = keras.Model(backbone.input, outputs, name="feature_extractor_core")
    inputs = keras.Input(backbone.input.shape[1:], name="image")
    return keras.Model(inputs, inner(inception_scale()(inputs)), name="feature_extractor")


def extract_to_cache(
    records: list[ImageRecord],
    cache: FeatureCache,
    backbone: keras.Model,
    kinds: list[str],
    image_size: int,
    batch_size: int = 32,
    skip_unreadable: bool = False,
    augment: keras.Model | None = None,
    description: str = "Extracting features",
    runtime: str = DEFAULTS["extract_runtime"],
) -> ExtractionStats:
    """Make sure every record has every kind in the cache; compute only what is missing.

    Files that cannot be decoded are an error (the scan checked them), unless
    `skip_unreadable`: then they are listed in `stats.failed`. `augment`
    (random layers on raw pixels) is applied to each batch before the backbone:
    records then stand for augmented views (see training/augment.py). `runtime` runs the backbone: auto, keras
    or openvino (features/runtime.py).
    """
    start = time.perf_counter()
    kinds = list(dict.fromkeys(part for kind in kinds for part in parts_of(kind)))  # an avgmax source: both kinds
    unique = {r.sha256: r.path for r in records}
    todo = [(h, unique[h]) for h in cache.missing(kinds, list(unique))]
    stats = ExtractionStats(images=len(unique), from_cache=len(unique) - len(todo))
    if todo:
        extractor = ExtractorRunner(build_extractor(backbone, kinds), kinds, cache.dir, runtime, len(todo))
        try:
            with console.progress(description, total=len(todo)) as advance:
                for batch in image_batches([p for _, p in todo], image_size, batch_size):
                    for index, reason in batch.failures:
                        stats.failed.append((todo[index][1], reason))
                    if len(batch.positions):
                        images = batch.images if augment is None else augment(batch.images, training=True)
                        outputs = extractor(images)
                        for row, index in enumerate(batch.positions):
                            for kind in kinds:
                                if cache.has(kind, todo[index][0]):
                                    continue  # another kind was missing: this one stays as it is, not written twice
                                cache.put(kind, todo[index][0], outputs[kind][row])
                            hooks.reached("feature_cached")
                        stats.computed += len(batch.positions)
                    advance(len(batch.positions) + len(batch.failures))
        finally:
            cache.flush()  # an object store: publish what is held in memory, Ctrl-C included
        stats.runtime = extractor.name
    stats.seconds = time.perf_counter() - start
    if stats.failed and not skip_unreadable:
        path, reason = stats.failed[0]
        raise UserError(f"{path} could not be read during feature extraction ({reason}); it changed after the scan.")
    return stats


def read_features(records: list[ImageRecord], cache: FeatureCache, kind: str) -> np.ndarray:
    """Stack the cached `kind` features of `records`, in order (an avgmax source: avg and max side by side)."""
    parts = parts_of(kind)
    if len(parts) > 1:
        return np.concatenate([read_features(records, cache, part) for part in parts], axis=1)
    arrays = [cache.get(kind, r.sha256) for r in records]
    missing = [r.path for r, a in zip(records, arrays) if a is None]
    if missing:
        raise RuntimeError(f"{len(missing)} cache entries vanished during training, e.g. {missing[0]}")
    return np.stack(arrays) if arrays else np.zeros((0,), "float32")
