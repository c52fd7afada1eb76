"""What `inceptune audit` costs against one feature extraction, and what it finds in planted faults.

Runs in one process, on a folder of photos as users have them (natural sizes):
  * the reference: what `train` starts with, the scan and the one backbone pass that fills the feature
    cache (every kind train keeps), into a fresh cache;
  * `audit` into another fresh cache (cold: the same pass, then near-duplicates, label issues, outliers,
    CleanVision, the page), then `audit` again (warm: every feature from the cache);
  * with --seeds N, for N seeds: a copy with 8% of the photos moved to a wrong class, and a copy with 30
    planted near-duplicates (crop 85-95%, resize, JPEG 60-80, brightness +-10%), each audited on the warm
    cache: recall, precision and how often the suggested label is right; pairs found.
A warm-up extraction of 8 photos runs first, so TensorFlow's start-up is in neither side.

    python benchmarks/audit.py --data ../shared/datasets/flowers5 \\
        --weights ../shared/weights/inception_v3_imagenet2015_partial_notop.weights.h5 --seeds 6
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import common  # noqa: E402
import machine  # noqa: E402


def main() -> None:
    args = common.parser(__doc__)
    args.add_argument("--image-size", type=int, default=299)
    args.add_argument("--seeds", type=int, default=0, help="planted-fault checks per kind of fault")
    args = args.parse_args()

    import numpy as np

    import inceptune
    from inceptune import console
    from inceptune.data.dataset import load_dataset
    from inceptune.models.weights import resolve_weights
    from inceptune.settings import resolve
    from inceptune.training.extraction import extract_features, feature_cache
    from inceptune.training.two_phase import new_classifier
    from planted import move_to_wrong_class, plant_near_duplicates

    work = Path(tempfile.mkdtemp(prefix="inceptune-audit-bench-"))
    size = args.image_size

    def extraction(cache_dir: Path, data: Path, limit: int | None = None) -> float:
        start = time.perf_counter()
        s = resolve("train", {"data": str(data), "weights": args.weights, "image_size": size,
                              "cache_dir": str(cache_dir)})
        dataset = load_dataset(data)
        weights = resolve_weights(args.weights)
        base = new_classifier(weights, dataset, s.replace(feature_block="mixed10", pooling="avg"))
        extract_features(dataset.records[:limit], feature_cache(s, weights), base, s)
        return time.perf_counter() - start

    def audit(data: Path, out: str):
        return inceptune.audit(str(data), weights=args.weights, image_size=size, cache_dir=str(work / "cache"),
                               out=str(work / out))

    extraction(work / "warmup", args.data, limit=8)
    reference = extraction(work / "reference", args.data)
    cold, warm = audit(args.data, "cold"), audit(args.data, "warm")
    images = cold.record["images"]
    result = {"machine": machine.describe(), "data": str(args.data), "images": images, "image_size": size,
              "reference_seconds": round(reference, 2), "cold_seconds": cold.record["seconds"],
              "warm_seconds": warm.record["seconds"], "cold_ratio": round(cold.record["seconds"]["total"] / reference, 3)}

    quiet = console._quiet
    console.set_quiet(True)
    labels, duplicates = [], []
    for seed in range(args.seeds):
        noisy = work / f"noisy-{seed}"
        shutil.copytree(args.data, noisy)
        moved = move_to_wrong_class(noisy, 0.08, seed)
        found = audit(noisy, f"noisy-audit-{seed}")
        flagged = {i.path: i.suggested_label for i in found.issues if i.issue == "label"}
        hits = [p for p in flagged if p in moved]
        labels.append({"seed": seed, "moved": len(moved), "flagged": len(flagged),
                       "recall": len(hits) / len(moved), "precision": len(hits) / max(1, len(flagged)),
                       "suggested_right": sum(flagged[p] == moved[p] for p in hits) / max(1, len(hits))})
        copies = work / f"copies-{seed}"
        shutil.copytree(args.data, copies)
        pairs = plant_near_duplicates(copies, 30, seed)
        found = audit(copies, f"copies-audit-{seed}")
        keeper = {i.path: i.duplicate_of for i in found.issues if i.issue == "near_duplicate"}
        duplicates.append({"seed": seed, "planted": len(pairs), "found": sum(
            keeper.get(a, a) == keeper.get(b, b) for a, b in pairs), "pairs": found.record["near_duplicates"]})
        shutil.rmtree(noisy), shutil.rmtree(copies)
    console.set_quiet(quiet)
    result.update(label_issues=labels, near_duplicates=duplicates)

    print(f"\n{images} photos at {size}; {machine.describe()}")
    print(f"{'side':<34}{'seconds':>10}{'vs reference':>14}")
    print(f"{'reference: scan + one extraction':<34}{reference:>10.1f}{1.0:>13.2f}x")
    for name, record in (("audit, cold cache", cold.record), ("audit, warm cache", warm.record)):
        total = record["seconds"]["total"]
        print(f"{name:<34}{total:>10.1f}{total / reference:>13.2f}x")
    if labels:
        for key in ("recall", "precision", "suggested_right"):
            values = [row[key] for row in labels]
            print(f"label issues {key}: mean {np.mean(values):.3f}, min {min(values):.3f} over {len(values)} seeds")
        print("near-duplicates found: " + ", ".join(f"{d['found']}/{d['planted']}" for d in duplicates))
    common.save(result, args.json)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
