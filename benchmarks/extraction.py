"""Phase 1 extraction on the runtime `auto` chooses against Keras `predict`, same photos, one process.

Every photo of --data at its natural size, decoded and resized as `train` does, through the backbone for
the kinds a default `train` caches (13: pooled features of mixed5..mixed10 and the activations phase 2
starts from), each pass into a fresh cache:

    keras         Keras predict_on_batch (`--extract-runtime keras`)
    auto, first   the first extraction in a new feature space: converts the extractor to OpenVINO, checks it
                  against Keras on the first batch, times both on the second, then runs the winner
    auto, later   a later extraction in that space: the converted extractor and the verdict are reused
    keras again   Keras once more, to bound the drift of the machine during the run

Prints seconds, images per second and the ratio to Keras (the mean of the two Keras passes), the largest
difference OpenVINO showed against Keras in float32 on the photos it was checked and timed on, and how the
cached entries (float16) of `auto, later` compare with Keras'.

    python benchmarks/extraction.py --data ../shared/datasets/hymenoptera \\
        --weights ../shared/weights/inception_v3_imagenet2015_partial_notop.weights.h5
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from inceptune.data.scan import scan_dataset
from inceptune.features.cache import FeatureCache, feature_space
from inceptune.features.extract import extract_to_cache
from inceptune.vocabulary.sources import parts_of
from inceptune.models.backbone import build_backbone
from inceptune.models.weights import resolve_weights
from inceptune.settings import resolve
from inceptune.training.extraction import feature_kinds

import common
from machine import describe
from precision import cpu_flags


def one(records, backbone, kinds, space, size, cache_dir: Path, runtime: str) -> dict:
    cache = FeatureCache(cache_dir, space)
    start = time.perf_counter()
    stats = extract_to_cache(records, cache, backbone, kinds, size, 32, runtime=runtime)
    seconds = time.perf_counter() - start
    verdicts = [json.loads(f.read_text()) for f in (cache.dir / "runtimes").glob("*/choice.json")]
    verdict = next(iter(verdicts[0].values())) if verdicts else None
    return {"seconds": seconds, "images": stats.computed, "images_per_second": stats.computed / seconds,
            "cache": cache, "verdict": verdict}


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--image-size", type=int, default=299)
    args = parser.parse_args()
    weights = resolve_weights(args.weights)
    records = scan_dataset(args.data).records
    kinds = list(dict.fromkeys(p for k in feature_kinds(resolve("train", {"data": str(args.data)})) for p in parts_of(k)))
    backbone = build_backbone(weights, args.image_size)
    space = feature_space(weights, args.image_size)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = {"keras": one(records, backbone, kinds, space, args.image_size, tmp / "a", "keras"),
                "auto, first": one(records, backbone, kinds, space, args.image_size, tmp / "b", "auto")}
        later = FeatureCache(tmp / "c", space)  # a new cache of the same space that has the converted extractor
        shutil.copytree(rows["auto, first"]["cache"].dir / "runtimes", later.dir / "runtimes")
        rows["auto, later"] = one(records, backbone, kinds, space, args.image_size, tmp / "c", "auto")
        rows["keras again"] = one(records, backbone, kinds, space, args.image_size, tmp / "d", "keras")
        a, c = rows["keras"]["cache"], rows["auto, later"]["cache"]
        beyond, largest, identical, total = 0.0, 0.0, 0, 0
        for r in records:
            for kind in kinds:
                x, y = a.get(kind, r.sha256), c.get(kind, r.sha256)
                step = np.spacing(np.maximum(np.abs(x), np.abs(y)).astype(np.float16)).astype(np.float32)
                largest = max(largest, float(np.abs(x - y).max()))
                beyond = max(beyond, float((np.abs(x - y) - step).max()))  # what float16 rounding does not explain
                identical += int(np.array_equal(x, y))
                total += 1
        verdict = rows["auto, first"]["verdict"]
        for row in rows.values():
            row.pop("cache")
            if row["verdict"] is None:
                row.pop("verdict")
    keras_rate = (rows["keras"]["images_per_second"] + rows["keras again"]["images_per_second"]) / 2
    for row in rows.values():
        row["vs_keras"] = row["images_per_second"] / keras_rate
    result = {"machine": describe(), "cpu_flags": cpu_flags(), "data": str(args.data), "images": len(records),
              "image_size": args.image_size, "kinds": kinds, "rows": rows, "chosen": verdict,
              "float32_max_abs_diff_checked": verdict and verdict["max_abs_diff"],
              "cached_float16_entries_identical": identical / total, "cached_max_abs_diff": largest,
              "cached_max_abs_diff_beyond_one_float16_step": beyond}
    print(f"CPU flags: {' '.join(result['cpu_flags'])}")
    print(f"{len(records)} photos at {args.image_size}, {len(kinds)} kinds")
    print(f"{'':14}{'seconds':>9}{'img/s':>8}{'vs keras':>10}")
    for name, row in rows.items():
        print(f"{name:14}{row['seconds']:>9.1f}{row['images_per_second']:>8.2f}{row['vs_keras']:>9.2f}x")
    if verdict:
        print(f"auto chose {verdict['runtime']}: OpenVINO within {verdict['max_abs_diff']:.1e} of Keras in float32 "
              f"on the photos it checked; Keras {1 / verdict['keras_s_per_image']:.2f} img/s, OpenVINO "
              f"{1 / verdict['openvino_s_per_image']:.2f} img/s on the timed batch")
    print(f"cached entries (float16): {identical / total:.1%} identical to Keras'; largest difference {largest:.1e}, "
          f"{max(beyond, 0):.1e} beyond one float16 step of the value (float32 values rounded either side)")
    common.save(result, args.json)


if __name__ == "__main__":
    main()
