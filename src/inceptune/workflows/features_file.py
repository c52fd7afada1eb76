"""`features`: Inception-v3 vectors for a folder of images, written to a Parquet or .npz file.

    inputs (class folders give labels) -> shard i/N -> extract into the feature cache
        (local: batches on this machine; ray: a pool of model actors)
        -> stream rows from the cache into the file

The cache makes it resumable: an interrupted extraction keeps every vector
already computed, and a rerun computes only the missing ones. It is the same
cache `train` uses (mixed10 with average pooling is the head's input).
"""

from __future__ import annotations

import hashlib
import os
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from inceptune import console
from inceptune.data.scan import ImageRecord, scan_dataset
from inceptune.errors import UserError
from inceptune.data.remote_tree import location_tree
from inceptune.storage import read_bytes
from inceptune.features.cache import FeatureCache, default_cache_dir, feature_space
from inceptune.features.extract import POOLINGS, extract_to_cache, pooled_kind
from inceptune.features.files import check_format, write_features
from inceptune.inference.inputs import expand_inputs
from inceptune.models.backbone import build_backbone, check_block, check_image_size
from inceptune.models.weights import resolve_weights
from inceptune.settings.schema import DEFAULTS
from inceptune.vocabulary.limits import DEFAULT_MAX_PIXELS

ENGINES = ("local", "ray")
CHUNK = 1024  # rows per Parquet row group


def parse_shard(shard: str) -> tuple[int, int]:
    try:
        index, count = (int(v) for v in shard.split("/"))
    except ValueError:
        raise UserError(f"--shard must look like i/N (e.g. 0/4), got {shard}.") from None
    if count < 1 or not 0 <= index < count:
        raise UserError(f"--shard {shard}: i must be between 0 and N-1.")
    return index, count


def in_shard(path: str, root: str, index: int, count: int) -> bool:
    """Deterministic: the file's path relative to the input decides its shard."""
    relative = os.path.relpath(path, root) if root else path
    return zlib.crc32(relative.encode()) % count == index


def list_inputs(data: str) -> tuple[list[ImageRecord], str]:
    """Records (with labels when `data` is a folder of class folders) and the root for sharding."""
    root = location_tree(data)  # a path, a file:// URL, or an object store's listing (data/remote_tree.py)
    if root is not None and root.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in root.iterdir()):
        scan = scan_dataset(data, min_classes=1)
        for s in scan.skipped:
            console.warn(f"skipped {s.path}: {s.reason}")
        return scan.records, scan.root
    paths = expand_inputs([data])
    with ThreadPoolExecutor(max_workers=8) as pool:
        hashes = list(pool.map(_sha256, paths))
    return [ImageRecord(p, None, h) for p, h in zip(paths, hashes) if h], str(root if root.is_dir() else "")


def _sha256(path: str) -> str | None:
    try:
        return hashlib.sha256(read_bytes(path)).hexdigest()
    except OSError as exc:
        console.warn(f"skipped {path}: cannot read file ({exc.strerror})")
        return None


def extract_features_file(data: str, out: str, layer: str = "mixed10", pooling: str = "avg",
                          image_size: int = DEFAULTS["image_size"], weights: str = DEFAULTS["weights"],
                          batch_size: int = DEFAULTS["batch_size"], shard: str = "0/1",
                          cache_dir: str | None = None, engine: str = "local", ray_address: str | None = None,
                          max_pixels: int = DEFAULT_MAX_PIXELS) -> dict:
    """Write one row per image of `data` to `out` (.parquet or .npz); returns a summary.

    Examples:
        >>> inceptune.extract_features_file("flowers/", "flowers.parquet", layer="mixed8")
        {'rows': 500, 'computed': 500, 'from_cache': 0, ...}
    """
    check_format(out)
    check_block(layer)
    check_image_size(image_size)
    if pooling not in POOLINGS:
        raise UserError(f"--pooling must be avg or max, got {pooling}.")
    if engine not in ENGINES:
        raise UserError(f"--engine must be local or ray, got {engine}.")
    index, count = parse_shard(shard)
    start = time.perf_counter()
    records, root = list_inputs(data)
    records = [r for r in records if in_shard(r.path, root, index, count)]
    if not records:
        raise UserError(f"No images in {data}" + (f" fall in shard {shard}." if count > 1 else "."))
    resolved = resolve_weights(weights)
    cache = FeatureCache(cache_dir or default_cache_dir(), feature_space(resolved, image_size))
    kind = pooled_kind(layer, pooling)
    if engine == "ray":
        from inceptune.engines.ray_engine import extract_with_ray

        stats = extract_with_ray(records, cache, kind, resolved, image_size, batch_size, ray_address)
    else:
        import keras

        keras.utils.set_random_seed(0)  # --weights none: the cache space's random-seed-0
        stats = extract_to_cache(records, cache, build_backbone(resolved, image_size), [kind], image_size,
                                 batch_size, skip_unreadable=True)
    failed = {path for path, _ in stats.failed}
    for path, reason in stats.failed:
        console.warn(f"skipped {path}: {reason}")
    console.info(f"Features: {stats.images} images, {stats.from_cache} from cache, {stats.computed} computed.")
    kept = [r for r in records if r.path not in failed]
    meta = {"layer": layer, "pooling": pooling, "image_size": image_size, "weights": resolved.spec,
            "weights_fingerprint": resolved.fingerprint, "shard": shard, "source": str(data),
            "classes": sorted({r.label for r in kept if r.label})}
    rows = write_features(out, meta, _chunks(kept, cache, kind))
    summary = {"rows": rows, "computed": stats.computed, "from_cache": stats.from_cache,
               "skipped": len(failed), "seconds": round(time.perf_counter() - start, 3), "out": str(out), **meta}
    console.info(f"Wrote {rows} rows of {layer} {pooling}-pooled features to {out}.")
    return summary


def _chunks(records: list[ImageRecord], cache: FeatureCache, kind: str):
    for i in range(0, len(records), CHUNK):
        part = records[i:i + CHUNK]
        vectors = np.stack([cache.get(kind, r.sha256) for r in part]).astype(np.float32)
        yield [r.path for r in part], [r.label for r in part], [r.sha256 for r in part], vectors

