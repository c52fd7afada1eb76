"""`train` in one process against `train --distribute multi-worker` on two local workers, same photos, one run.

Both start from an empty feature cache (the two workers share theirs, so each computes half the images), with
the photos of --data at their natural sizes, `--search none --no-refit` (the fits are what the cluster
shares), and `--extract-runtime keras` on both sides (a worker's half could fall under the size at which
`auto` converts to OpenVINO, which would compare runtimes instead of process counts). Each worker gets
cores / workers threads, so both sides use the whole machine.

Prints, for 1 and 2 workers: wall seconds of the whole command, images per second of extraction (as the run
logs it), of phase 1 and of phase 2 (training images x epochs / seconds of those epochs), and the largest
relative difference of the per-epoch validation loss (dropout on: each replica draws its own masks).

    python benchmarks/multi_worker.py --data ../shared/datasets/hymenoptera \\
        --weights ../shared/weights/inception_v3_imagenet2015_partial_notop.weights.h5
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from inceptune.deploy.loadtest import free_ports

import common
from machine import describe
from precision import cpu_flags


def run(args, out: Path, cache: Path, workers: int) -> dict:
    command = [sys.executable, "-m", "inceptune", "train", str(args.data), "--out", str(out), "--weights",
               args.weights, "--image-size", str(args.image_size), "--epochs", str(args.epochs),
               "--fine-tune-epochs", str(args.fine_tune_epochs), "--search", "none", "--no-refit",
               "--extract-runtime", "keras", "--cache-dir", str(cache), "--duplicate-similarity", "1.0"]
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    env = {**os.environ, "INCEPTUNE_EXPORT": "none", "TF_NUM_INTRAOP_THREADS": threads, "OMP_NUM_THREADS": threads}
    start = time.perf_counter()
    if workers == 1:
        procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
    else:
        hosts = [f"localhost:{port}" for port in free_ports(workers)]
        procs = [subprocess.Popen([*command, "--distribute", "multi-worker"], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True,
                                  env={**env, "TF_CONFIG": json.dumps({"cluster": {"worker": hosts},
                                                                       "task": {"type": "worker", "index": i}})})
                 for i in range(workers)]
    logs = [p.communicate()[0] for p in procs]
    wall = time.perf_counter() - start
    for p, log in zip(procs, logs):
        if p.returncode:
            sys.exit(f"a run failed ({p.returncode}):\n{log[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    train_images = sum(json.loads((out / "dataset.json").read_text())["counts"]["train"].values())
    with open(out / "history.csv", newline="") as f:
        history = list(csv.DictReader(f))
    rates = {}
    for phase in ("head", "fine-tune"):
        rows = [r for r in history if r["phase"] == phase]
        rates[phase] = train_images * len(rows) / sum(float(r["seconds"]) for r in rows) if rows else None
    features = metrics["phase1"]["features"]
    return {"workers": workers, "wall_seconds": wall, "train_images": train_images,
            "extraction_images_per_second": features["images"] / features["seconds"] if features["seconds"] else None,
            "phase1_images_per_second": rates["head"], "phase2_images_per_second": rates["fine-tune"],
            "val_loss": [float(r["val_loss"]) for r in history], "log_tail": logs[0][-600:]}


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--image-size", type=int, default=299)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--fine-tune-epochs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="inceptune-multi-worker-") as tmp:
        rows = [run(args, Path(tmp) / f"run-{n}", Path(tmp) / f"cache-{n}", n) for n in (1, 2)]
    one, two = rows
    val_diff = max(abs(a - b) / b for a, b in zip(two["val_loss"], one["val_loss"]))
    result = {"machine": describe(), "cpu_flags": cpu_flags(), "data": str(args.data), "image_size": args.image_size,
              "epochs": args.epochs, "fine_tune_epochs": args.fine_tune_epochs, "rows": rows,
              "val_loss_max_relative_difference": val_diff}
    print(f"CPU flags: {' '.join(result['cpu_flags'])}")
    print(f"{one['train_images']} training images at {args.image_size}; {args.epochs} + {args.fine_tune_epochs} epochs")
    print(f"{'workers':>8}{'wall s':>9}{'extract img/s':>15}{'phase 1 img/s':>15}{'phase 2 img/s':>15}")
    for row in rows:
        print(f"{row['workers']:>8}{row['wall_seconds']:>9.1f}{row['extraction_images_per_second']:>15.2f}"
              f"{row['phase1_images_per_second']:>15.1f}{row['phase2_images_per_second']:>15.2f}")
    print(f"2 workers / 1: wall {one['wall_seconds'] / two['wall_seconds']:.2f}x faster, phase 2 "
          f"{two['phase2_images_per_second'] / one['phase2_images_per_second']:.2f}x the images per second")
    print(f"val loss per epoch: largest relative difference {val_diff:.2%} (dropout masks differ per replica)")
    common.save(result, args.json)


if __name__ == "__main__":
    main()
