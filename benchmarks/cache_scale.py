"""The feature cache at scale: bytes and files per photo, and phase 2 read from disk against from memory.

1. Generates --photos JPEGs (inceptune demo's three shape classes, 320x320, so no two are alike).
2. A default `train` at 299 (quick search: every pooled source mixed5..mixed10, avg and max, and the
   activations before mixed9 that phase 2 trains on; one epoch of each phase) extracts them into a fresh
   cache; at the end the cache folder's bytes per photo and files per 10,000 photos are counted.
3. Phase 2, one epoch (mixed9..mixed10 and the head, mixed10 avg features), twice on that cache: reading
   its activations batch by batch from disk (training/data.py's lazy path, with prefetch threads) and from
   memory (the whole split loaded first). Both read everything from the cache that step 2 filled (its
   fine-tuning epoch needs the activations before mixed9, so one backbone pass cached them with the rest)
   and time their epoch (history.csv's seconds: the epoch itself, loading excluded). Prints both and the
   ratio.

    python benchmarks/cache_scale.py --weights ../shared/weights/inception_v3_imagenet2015_partial_notop.weights.h5 \\
        --photos 10000 --work /tmp/cache-scale
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import inceptune
from inceptune.workflows.demo import make_shapes_dataset

from machine import describe


def count(folder: Path) -> tuple[int, int]:
    files = [f for f in folder.rglob("*") if f.is_file()]
    return len(files), sum(f.stat().st_size for f in files)


def phase2_epoch(data: Path, weights: str, work: Path, cache: Path, in_memory: bool) -> dict:
    import inceptune.training.data as training_data

    training_data.IN_MEMORY_LIMIT = 1 << 45 if in_memory else 0
    name = "memory" if in_memory else "disk"
    result = inceptune.train(str(data), out=str(work / f"run-{name}"), weights=weights, cache_dir=str(cache),
                             search="none", epochs=1, fine_tune_epochs=1, refit=False, export="none",
                             calibrate="none", ood=False, overwrite=True, tensorboard=False)
    phase2 = result.metrics["phase2"]
    rows = [row for row in csv.DictReader(open(result.run / "history.csv")) if row["phase"] == "fine-tune"]
    return {"seconds": float(rows[0]["seconds"]), "phase2_seconds_with_loading": phase2["seconds"],
            "epochs": phase2["epochs_run"], "examples": phase2.get("examples_per_epoch"),
            "features_from_cache": result.metrics["phase1"]["features"]["from_cache"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--photos", type=int, default=10_000)
    parser.add_argument("--work", type=Path, required=True, help="a folder for the photos, the cache and the runs")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    per_class = -(-args.photos // 3)
    data = make_shapes_dataset(args.work / "photos", per_class=per_class, size=320)
    photos = sum(1 for _ in data.rglob("*.jpg"))
    cache = args.work / "cache"
    extraction = inceptune.train(str(data), out=str(args.work / "run-extract"), weights=args.weights,
                                 cache_dir=str(cache), epochs=1, fine_tune_epochs=1, refit=False, export="none",
                                 calibrate="none", ood=False, overwrite=True, tensorboard=False)
    memory = phase2_epoch(data, args.weights, args.work, cache, in_memory=True)
    disk = phase2_epoch(data, args.weights, args.work, cache, in_memory=False)
    files, size = count(cache)
    kinds = sorted(p.name for p in next(cache.glob("*/shards")).iterdir())
    result = {"machine": describe(), "photos": photos, "image_size": 299, "kinds": kinds,
              "extraction_seconds": extraction.metrics["phase1"]["features"].get("seconds"),
              "cache_files": files, "cache_bytes": size, "bytes_per_photo": size / photos,
              "files_per_10000_photos": files * 10_000 / photos}
    print(f"{photos} photos at 299: cache {size / 2**20:.0f} MiB in {files} files = {size / photos / 1024:.1f} KB "
          f"per photo, {result['files_per_10000_photos']:.0f} files per 10,000 photos ({len(kinds)} kinds)")
    result.update(phase2_memory=memory, phase2_disk=disk, disk_speed_vs_memory=memory["seconds"] / disk["seconds"])
    print(f"phase 2, one epoch: from memory {memory['seconds']:.1f} s, read from disk {disk['seconds']:.1f} s: "
          f"disk runs at {100 * result['disk_speed_vs_memory']:.0f}% of the in-memory speed")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
