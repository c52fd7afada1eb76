"""What calibration and the "none of these" score do on real photos: ECE before and after, and photos of other things.

One `train` at 299 on a folder of class folders (natural sizes), with a large test split (default 0.6, about 300 of
flowers5's 500 photos) so the ECE is measured on enough images. Prints:
  * accuracy on the test split with its 95% interval, beside a logistic regression on the same cached mixed10
    features of the same photos (metrics.json's baseline);
  * the temperature, the test ECE before and after it, the ECE a perfectly calibrated model with these very
    confidences would show on this many images (labels drawn from its own probabilities, 200 draws: the
    sampling floor under which no calibration can go), and the temperature a fit on the test split itself
    would choose (an oracle, for comparison);
  * with --other FOLDER (photos of other things, e.g. hymenoptera/val): the share of them answered unknown,
    the share of the test split answered unknown, and the OOD score's AUROC, per subfolder too.

    python benchmarks/calibration_ood.py --data ../shared/datasets/flowers5 \\
        --weights ../shared/weights/inception_v3_imagenet2015_partial_notop.weights.h5 \\
        --other ../shared/datasets/hymenoptera/val
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import machine  # noqa: E402


def main() -> None:
    args = common.parser(__doc__)
    args.add_argument("--other", type=Path, help="a folder of photos of other things (subfolders reported apart)")
    args.add_argument("--test-split", type=float, default=0.6)
    args.add_argument("--cache", type=Path, help="a feature cache to reuse (default: a fresh one)")
    args = args.parse_args()

    import numpy as np
    from sklearn.metrics import roc_auc_score

    import inceptune
    from inceptune.evaluation.calibration import at_temperature, fit_temperature
    from inceptune.evaluation.intervals import accuracy_interval
    from inceptune.evaluation.metrics import calibration

    work = Path(tempfile.mkdtemp(prefix="calibration-ood-"))
    run = work / "run"
    inceptune.train(str(args.data), out=str(run), weights=args.weights, test_split=args.test_split,
                    cache_dir=str(args.cache or work / "cache"), tensorboard=False)
    metrics = json.loads((run / "metrics.json").read_text())
    model = inceptune.load(str(run), runtime="keras")
    with open(run / "manifest.csv") as f:
        tested = [r for r in csv.DictReader(f) if r["split"] == "test"]
    answers = model.predict([r["path"] for r in tested], top=1)
    classes = model.classes
    y = np.array([classes.index(r["label"]) for r in tested])
    after = np.array([[a["probabilities"][c] for c in classes] for a in answers])
    temperature = metrics["calibration"]["temperature"]
    before = at_temperature(after, 1 / temperature)
    rng = np.random.default_rng(0)
    floor = [calibration(np.array([rng.choice(len(classes), p=p / p.sum()) for p in after]), after)[0]
             for _ in range(200)]
    test = metrics["test"]
    result = {
        "machine": machine.describe(), "images_tested": len(tested),
        "accuracy": test["accuracy"], "accuracy_ci95": list(accuracy_interval(test["accuracy"], len(tested))),
        "logistic_regression_accuracy": metrics["baseline"]["test"]["accuracy"],
        "temperature": temperature, "oracle_temperature_on_test": fit_temperature(before, y),
        "ece_before": calibration(y, before)[0], "ece_after": calibration(y, after)[0],
        "ece_floor_mean": float(np.mean(floor)), "ece_floor_90": [float(q) for q in np.percentile(floor, [5, 95])],
        "argmax_unchanged": bool(np.array_equal(before.argmax(1), after.argmax(1))),
        "ood_threshold": model.ood_threshold,
    }
    print(f"test: {len(tested)} photos, accuracy {test['accuracy']:.4f} (95% CI {result['accuracy_ci95'][0]:.3f}-"
          f"{result['accuracy_ci95'][1]:.3f}); logistic regression on mixed10: "
          f"{result['logistic_regression_accuracy']:.4f}")
    print(f"temperature {temperature:.3f} (fitted on val; on test itself: {result['oracle_temperature_on_test']:.3f}); "
          f"test ECE {result['ece_before']:.4f} -> {result['ece_after']:.4f}; a perfectly calibrated model: "
          f"{result['ece_floor_mean']:.4f} (90%: {result['ece_floor_90'][0]:.4f}-{result['ece_floor_90'][1]:.4f})")
    if args.other:
        inside = np.array([a["ood_score"] for a in answers])
        groups = {}
        for path in sorted(p for p in args.other.rglob("*") if p.is_file()):
            groups.setdefault(path.parent.name, []).append(str(path))
        scores = {g: np.array([a["ood_score"] for a in model.predict(paths, top=1) if "ood_score" in a])
                  for g, paths in groups.items()}
        every = np.concatenate(list(scores.values()))
        threshold = model.ood_threshold

        def auroc(outside):
            return float(roc_auc_score(np.r_[np.zeros(len(inside)), np.ones(len(outside))], np.r_[inside, outside]))

        result["ood"] = {"test_unknown": float(np.mean(inside > threshold)),
                         "other_unknown": float(np.mean(every > threshold)), "auroc": auroc(every),
                         "by_folder": {g: {"images": len(s), "unknown": float(np.mean(s > threshold)),
                                           "auroc": auroc(s)} for g, s in scores.items()}}
        o = result["ood"]
        print(f"none of these: {o['other_unknown']:.1%} of {len(every)} other photos, {o['test_unknown']:.1%} of the "
              f"test split; AUROC {o['auroc']:.3f} ("
              + ", ".join(f"{g} {v['unknown']:.1%} unknown, AUROC {v['auroc']:.3f}" for g, v in o["by_folder"].items())
              + ")")
    common.save(result, args.json)


if __name__ == "__main__":
    main()
