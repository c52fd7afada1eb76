"""FP32 against `--precision mixed` (bfloat16 compute on CPUs) for extraction and phase 2, same data, one run.

Two trains of the same data with the same seed and recipe (`--search none`: mixed10 avg features, the
dense head, phase 2 fine-tuning mixed9..mixed10 on the cached activations, no augmentation), each with a
fresh feature cache of its own so each extracts with its own precision. Reported from each run's
metrics.json: extraction seconds (phase 1's features), phase 2 seconds per epoch, validation accuracy, and
the logistic regression on the same cached features (the run's baseline). Prints the CPU flags that decide
whether bfloat16 has hardware behind it (avx512_bf16, amx_bf16).

    python benchmarks/precision.py --data ../shared/datasets/hymenoptera \\
        --weights ../shared/weights/inception_v3_imagenet2015_partial_notop.weights.h5 --fine-tune-epochs 3
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import inceptune

import common
from machine import describe


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = set(re.findall(r"\b(avx512_bf16|amx_bf16|amx_tile|avx512f|avx512_vnni|avx_vnni|avx2|fma)\b", text))
    return sorted(flags)


def one(data: Path, weights: str, precision: str, epochs: int, tmp: Path) -> dict:
    result = inceptune.train(str(data), out=str(tmp / f"run-{precision}"), weights=weights, precision=precision,
                             cache_dir=str(tmp / f"cache-{precision}"), search="none", refit=False,
                             fine_tune_epochs=epochs, patience=epochs, export="none", tensorboard=False)
    m = result.metrics
    phase2 = m["phase2"]
    return {"extraction_seconds": m["phase1"]["features"].get("seconds"),
            "phase2_seconds": phase2["seconds"], "phase2_epochs": phase2["epochs_run"],
            "phase2_seconds_per_epoch": phase2["seconds"] / max(1, phase2["epochs_run"]),
            "val_accuracy": m["val"]["accuracy"], "val_images": m["val"].get("images"),
            "baseline_val_accuracy": (m.get("baseline") or {}).get("val", {}).get("accuracy")}


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--fine-tune-epochs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = {p: one(args.data, args.weights, p, args.fine_tune_epochs, Path(tmp)) for p in ("float32", "mixed")}
    f, m = rows["float32"], rows["mixed"]
    result = {"machine": describe(), "cpu_flags": cpu_flags(), "rows": rows,
              "extraction_speedup": f["extraction_seconds"] / m["extraction_seconds"],
              "phase2_speedup": f["phase2_seconds_per_epoch"] / m["phase2_seconds_per_epoch"],
              "val_accuracy_change_points": 100 * (m["val_accuracy"] - f["val_accuracy"])}
    print(f"CPU flags: {' '.join(result['cpu_flags'])}")
    print(f"{'':10}{'extract s':>10}{'phase 2 s/epoch':>17}{'val acc':>9}{'LR val acc':>11}")
    for name, r in rows.items():
        print(f"{name:10}{r['extraction_seconds']:>10.1f}{r['phase2_seconds_per_epoch']:>17.1f}"
              f"{r['val_accuracy']:>9.4f}{r['baseline_val_accuracy'] or float('nan'):>11.4f}")
    print(f"mixed vs float32: extraction {result['extraction_speedup']:.2f}x, phase 2 {result['phase2_speedup']:.2f}x, "
          f"val accuracy {result['val_accuracy_change_points']:+.2f} points")
    common.save(result, args.json)


if __name__ == "__main__":
    main()
