"""What the quick search costs now that it never stops at a budget: every candidate, against the extraction.

One `train` on an empty feature cache (the default quick search, no fine-tuning, no export) gives the
extraction's seconds; then two more from that cache, in the same process: the search as inceptune fits it
(each logistic regression in the span of the photos when there are more features than photos) and as the
reference fits it (scikit-learn in all D features, what the search did before). Prints the seconds, the ratio, whether both chose the same recipe with the same CV scores,
and the search's share of the extraction.

    python benchmarks/search_cost.py --data ../shared/datasets/flowers5 \\
        --weights ../shared/weights/inception_v3_imagenet2015_partial_notop.weights.h5 --image-size 299
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import inceptune
from inceptune.search import heads

import common
from machine import describe


def train(args, folder: Path, cache_dir: Path) -> dict:
    return inceptune.train(str(args.data), out=str(folder), weights=args.weights, image_size=args.image_size,
                           cache_dir=str(cache_dir), fine_tune_epochs=0, export="none").metrics


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--image-size", type=int, default=299)
    args = parser.parse_args()
    print(describe())
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = Path(tmp) / "cache"
        first = train(args, Path(tmp) / "first", cache_dir)
        ours = train(args, Path(tmp) / "ours", cache_dir)  # the same search, every feature from the cache
        span = heads._span
        heads._span = lambda x: None  # the reference: every fit in all D features, as before
        try:
            ref = train(args, Path(tmp) / "reference", cache_dir)
        finally:
            heads._span = span
    extraction = first["phase1"]["features"]["seconds"]
    a, b = ours["search"], ref["search"]
    same = [t["recipe"] for t in a["tried"]] == [t["recipe"] for t in b["tried"]] and a["recipe"] == b["recipe"]
    largest = max(abs(x - y) for t, u in zip(a["tried"], b["tried"]) for x, y in zip(t["per_fold"], u["per_fold"]))
    print(f"images {first['phase1']['features']['images']}, image size {args.image_size}")
    print(f"extraction (empty cache): {extraction:.1f} s; the first train's search: {first['search']['seconds']:.1f} s "
          f"({len(first['search']['tried'])} recipes)")
    print(f"quick search from the cache, every candidate ({len(a['tried'])} recipes): reference (all D features) "
          f"{b['seconds']:.1f} s, inceptune (span of the photos) {a['seconds']:.1f} s: {b['seconds'] / a['seconds']:.2f}x")
    print(f"same candidates and choice: {same}; largest per-fold accuracy difference {largest:.4f}")
    print(f"the search's share of the extraction: {a['seconds'] / extraction:.0%} (reference {b['seconds'] / extraction:.0%})")
    common.save({"extraction_seconds": extraction, "search_seconds": a["seconds"], "reference_seconds": b["seconds"],
                 "ratio": b["seconds"] / a["seconds"], "same_choice": same, "largest_fold_difference": largest,
                 "recipes": len(a["tried"]), "choice": a["recipe"], "machine": describe()}, args.json)


if __name__ == "__main__":
    main()
