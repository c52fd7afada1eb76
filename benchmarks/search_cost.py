"""The quick search without a budget: what it costs against the extraction, and that a busy machine chooses the same.

For each image size, three `train`s of the same photos (the default quick search, no fine-tuning, no
export), one after another: on an empty feature cache (the extraction's seconds, the reference), then twice
from that cache, once on an idle machine and once with every core busy in other processes. Prints the
extraction's and the searches' seconds, the search's share of the extraction (the ratio), and whether the
idle and the busy run tried the same recipes, scored them the same and chose the same.

    python benchmarks/search_cost.py --data ../shared/datasets/flowers5 \\
        --weights ../shared/weights/inception_v3_imagenet2015_partial_notop.weights.h5 --sizes 120 150 299
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import inceptune

import common
from machine import describe


def train(args, size: int, folder: Path, cache_dir: Path) -> dict:
    return inceptune.train(str(args.data), out=str(folder), weights=args.weights, image_size=size,
                           cache_dir=str(cache_dir), fine_tune_epochs=0, export="none").metrics


def busy_train(args, size: int, folder: Path, cache_dir: Path) -> dict:
    """The same train while a busy loop runs on every core in processes of their own."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        return train(args, size, folder, cache_dir)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[120, 150, 299])
    args = parser.parse_args()
    print(describe())
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            cache_dir = Path(tmp) / "cache"
            first = train(args, size, Path(tmp) / "first", cache_dir)
            idle = train(args, size, Path(tmp) / "idle", cache_dir)
            busy = busy_train(args, size, Path(tmp) / "busy", cache_dir)
        a, b = idle["search"], busy["search"]
        same = ([(t["recipe"], t["per_fold"]) for t in a["tried"]] == [(t["recipe"], t["per_fold"]) for t in b["tried"]]
                and a["recipe"] == b["recipe"])
        extraction = first["phase1"]["features"]["seconds"]
        rows.append({"image_size": size, "images": first["phase1"]["features"]["images"],
                     "extraction_seconds": extraction, "search_seconds_idle": a["seconds"],
                     "search_seconds_busy": b["seconds"], "recipes": len(a["tried"]),
                     "share_of_extraction": a["seconds"] / extraction, "same_choice_idle_and_busy": same,
                     "chosen": a["recipe"], "cv_accuracy": a["cv_accuracy"],
                     "baseline_cv_accuracy": a["baseline"]["cv_accuracy"], "test_accuracy": idle["test"]["accuracy"],
                     "baseline_test_accuracy": idle["baseline"]["test"]["accuracy"]})
    print(describe())
    for r in rows:
        print(f"{r['image_size']} px, {r['images']} images: extraction {r['extraction_seconds']:.1f} s (reference); "
              f"quick search {r['search_seconds_idle']:.1f} s idle, {r['search_seconds_busy']:.1f} s busy "
              f"({r['recipes']} recipes); search / extraction {r['share_of_extraction']:.2f}; same recipes, scores "
              f"and choice idle and busy: {r['same_choice_idle_and_busy']}; chose {r['chosen']['feature_block']} "
              f"{r['chosen']['pooling']} (CV {r['cv_accuracy']:.3f}, logistic regression on mixed10 "
              f"{r['baseline_cv_accuracy']:.3f}; test {r['test_accuracy']:.3f} vs {r['baseline_test_accuracy']:.3f})")
    common.save({"machine": describe(), "rows": rows}, args.json)


if __name__ == "__main__":
    main()
