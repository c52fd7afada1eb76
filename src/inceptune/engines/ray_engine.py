"""`--engine ray`: Ray Data `map_batches` over a pool of model actors.

Each actor builds the backbone once and then decodes and embeds batch after
batch; Ray runs decoding (reading the files in the actor) and inference of
different batches concurrently across actors, and uses GPUs where the
cluster has them. The driver writes the vectors into the same feature cache
as the local engine, so both engines produce the same files. Connects to an
existing cluster (`--ray-address`, or RAY_ADDRESS) or starts a local one.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np

from inceptune import console
from inceptune.data.scan import ImageRecord
from inceptune.errors import UserError
from inceptune.features.cache import FeatureCache
from inceptune.features.extract import ExtractionStats
from inceptune.models.weights import Weights


class _Embedder:
    """A Ray actor: the backbone loaded once, then batches of paths -> vectors."""

    def __init__(self, weights_path: str | None, weights_spec: str, image_size: int, kind: str):
        import inceptune

        inceptune._import_tensorflow_quietly()
        from inceptune.features.extract import build_extractor
        from inceptune.models.backbone import build_backbone
        from inceptune.models.weights import resolve_weights

        import keras

        weights = resolve_weights(weights_path or weights_spec)
        keras.utils.set_random_seed(0)  # --weights none: the same random backbone as the local engine
        self.kind, self.image_size = kind, image_size
        self.extractor = build_extractor(build_backbone(weights, image_size), [kind])

    def __call__(self, batch: dict) -> dict:
        from inceptune.data.images import load_image
        from inceptune.data.pipeline import resize_image
        from inceptune.errors import ImageError

        images, ok, errors = [], [], []
        for path in batch["path"]:
            try:
                images.append(resize_image(load_image(path), self.image_size))
                ok.append(True)
                errors.append("")
            except ImageError as exc:
                ok.append(False)
                errors.append(exc.reason)
        vectors = np.zeros((len(ok), 0), np.float32)
        if images:
            computed = np.asarray(self.extractor.predict_on_batch(np.stack(images))[self.kind], np.float32)
            vectors = np.zeros((len(ok), computed.shape[1]), np.float32)
            vectors[np.array(ok)] = computed
        return {"sha256": batch["sha256"], "path": batch["path"], "ok": np.array(ok), "error": np.array(errors),
                "vector": vectors}


def extract_with_ray(records: list[ImageRecord], cache: FeatureCache, kind: str, weights: Weights,
                     image_size: int, batch_size: int, address: str | None = None) -> ExtractionStats:
    try:
        import ray
    except ImportError:
        raise UserError("--engine ray needs Ray: pip install 'inceptune[ray]'.") from None
    start = time.perf_counter()
    unique = {r.sha256: r.path for r in records}
    todo = [(h, p) for h, p in unique.items() if not cache.has(kind, h)]
    stats = ExtractionStats(images=len(unique), from_cache=len(unique) - len(todo))
    if todo:
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=address or os.environ.get("RAY_ADDRESS"), log_to_driver=False,
                     include_dashboard=False, configure_logging=False)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # inceptune shows its own bar
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        try:
            gpus = ray.cluster_resources().get("GPU", 0)
            actors = max(1, int(gpus) or min(4, int(ray.cluster_resources().get("CPU", 1)) // 2 or 1))
            dataset = ray.data.from_items([{"sha256": h, "path": p} for h, p in todo])
            vectors = dataset.map_batches(
                _Embedder, fn_constructor_kwargs={"weights_path": str(weights.path) if weights.path else None,
                                                  "weights_spec": weights.spec, "image_size": image_size,
                                                  "kind": kind},
                batch_size=batch_size, concurrency=actors, num_gpus=1 if gpus else 0, batch_format="numpy")
            with console.progress("Extracting features (Ray)", total=len(todo)) as advance:
                for batch in vectors.iter_batches(batch_size=batch_size, batch_format="numpy"):
                    for sha, path, ok, error, vector in zip(batch["sha256"], batch["path"], batch["ok"],
                                                            batch["error"], batch["vector"]):
                        if ok:
                            cache.put(kind, str(sha), vector)
                            stats.computed += 1
                        else:
                            stats.failed.append((str(path), str(error)))
                    advance(len(batch["sha256"]))
        finally:
            if started_here:
                ray.shutdown()
    stats.seconds = time.perf_counter() - start
    return stats
