"""The default `train` recipe against the best logistic-regression probe on the same pooled features.

Runs, on one folder of photos as users have them (natural sizes), in one process:
  * the probes: `features` at mixed8 and at mixed10 (this project's own pooled features), then
    `fit-features logreg` (standardised logistic regression, C in {0.01, 0.1, 1} by 5-fold CV); the
    grid's best CV accuracy is an optimistic figure for the probe, so the comparison favours it;
  * the default recipe: `cv` with default settings (5 outer folds; in each, the quick search on that
    fold's train + val, the fit, the refit, scored on the held-out fold), so its accuracy is that of
    the whole `train` procedure on images it never saw.
All three share one feature cache: the backbone runs once per image. Prints a table and the verdict.

    python benchmarks/accuracy.py --data ../shared/datasets/flowers5 \\
        --weights ../shared/weights/inception_v3_imagenet2015_partial_notop.weights.h5
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import machine  # noqa: E402


def main() -> None:
    args = common.parser(__doc__)
    args.add_argument("--image-size", type=int, default=299)
    args.add_argument("--folds", type=int, default=5)
    args.add_argument("--cache-dir", help="feature cache (default: a fresh temporary folder)")
    args = args.parse_args()

    import inceptune

    work = Path(tempfile.mkdtemp(prefix="inceptune-accuracy-"))
    cache = args.cache_dir or str(work / "cache")
    rows, result = [], {"machine": machine.describe(), "data": str(args.data), "image_size": args.image_size}
    for layer in ("mixed8", "mixed10"):
        start = time.perf_counter()
        table = work / f"features-{layer}.parquet"
        inceptune.extract_features_file(str(args.data), str(table), layer=layer, image_size=args.image_size,
                                        weights=args.weights, cache_dir=cache)
        fitted = inceptune.fit_features(str(table), "logreg", out=str(work / f"logreg-{layer}"), folds=args.folds)
        rows.append((f"probe: features --layer {layer} + fit-features logreg", fitted["cv_accuracy_mean"],
                     fitted["cv_accuracy_std"], time.perf_counter() - start))
    start = time.perf_counter()
    cv = inceptune.cross_validate(str(args.data), folds=args.folds, weights=args.weights,
                                  image_size=args.image_size, cache_dir=cache, out=str(work / "cv"))
    accuracy = cv.summary["accuracy"]
    rows.append(("default train recipe (cv: search, fit, refit per fold)", accuracy["mean"], accuracy["std"],
                 time.perf_counter() - start))
    baseline = cv.record["baseline"]["accuracy"]
    rows.append(("  logistic regression (C=1) on mixed10, same outer folds", baseline["mean"], baseline["std"], 0.0))

    print(f"\n{args.data} at {args.image_size}, {args.folds}-fold CV, weights {Path(args.weights).name}")
    print(f"{'':62} {'accuracy':>9} {'± std':>7} {'seconds':>8}")
    for name, mean, std, seconds in rows:
        print(f"{name:62} {mean:9.4f} {std:7.4f} {seconds:8.1f}")
    best_probe = max(r[1] for r in rows[:2])
    ratio = accuracy["mean"] / best_probe
    print(f"default / best probe: {ratio:.4f} -> "
          + ("the default recipe is at least as accurate" if accuracy["mean"] >= best_probe else "THE PROBE WINS"))
    print("chosen per fold: " + "; ".join(f"{f['recipe']['feature_block']} {f['recipe']['pooling']} "
                                          f"{f['recipe']['head']} l2={f['recipe'].get('l2')}" for f in cv.per_fold
                                          if f.get("recipe")))
    result.update(rows=[{"name": r[0], "accuracy": r[1], "std": r[2], "seconds": r[3]} for r in rows],
                  ratio=ratio, per_fold=cv.per_fold)
    common.save(result, args.json)


if __name__ == "__main__":
    main()
