"""K-fold cross-validation vs one train on the same data, same settings, one run.

`inceptune train` runs first with an empty feature cache (its time includes
the one feature extraction); `inceptune cv --folds K` then runs the whole
two-phase recipe K times on the features that train left in the cache.
Prints both wall times, their ratio (the claim: below 2 for K = 5), and the
mean ± std accuracy of the folds.

    python benchmarks/cv_vs_train.py --data ../shared/datasets/flowers5 \
        --weights ../shared/weights/inception_v3_imagenet2015_partial_notop.weights.h5
"""

from __future__ import annotations

import json
import platform
import tempfile
import time

import common
import inceptune
from inceptune import console

console.import_tensorflow_quietly()


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--image-size", type=int, default=299)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--fine-tune-epochs", type=int, default=10, help="train's default: 10")
    args = parser.parse_args()
    data = str(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        settings = dict(weights=args.weights, image_size=args.image_size, cache_dir=f"{tmp}/cache",
                      fine_tune_epochs=args.fine_tune_epochs)
        start = time.perf_counter()
        trained = inceptune.train(data, out=f"{tmp}/run", **settings)
        train_seconds = time.perf_counter() - start
        start = time.perf_counter()
        cv = inceptune.cross_validate(data, folds=args.folds, out=f"{tmp}/cv", **settings)
        cv_seconds = time.perf_counter() - start
    acc = cv.summary["accuracy"]
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores",
        "data": data, "image_size": args.image_size, "folds": args.folds,
        "fine_tune_epochs": args.fine_tune_epochs,
        "train_seconds": round(train_seconds, 1), "cv_seconds": round(cv_seconds, 1),
        "ratio_cv_over_train": round(cv_seconds / train_seconds, 2),
        "train_test_accuracy": trained.metrics["test"]["accuracy"] if trained.metrics.get("test") else None,
        "cv_accuracy_mean": round(acc["mean"], 4), "cv_accuracy_std": round(acc["std"], 4),
        "fine_tune_epochs_run_per_fold": [f["fine_tune_epochs_run"] for f in cv.per_fold],
        "train_fine_tune_epochs_run": trained.metrics["phase2"]["epochs_run"],
    }
    print(f"train (cold cache): {train_seconds:.1f}s   cv {args.folds} folds (warm cache): {cv_seconds:.1f}s   "
          f"ratio {cv_seconds / train_seconds:.2f}x (claim: < 2)")
    print(f"cv accuracy {acc['mean']:.4f} ± {acc['std']:.4f}")
    print(json.dumps(result, indent=2))
    common.save(result, args.json)


if __name__ == "__main__":
    main()
