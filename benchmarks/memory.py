"""Peak resident memory of train (frozen phase, then with fine-tuning), predict and serve, at 299x299.

Each command runs in its own process and its peak comes from the kernel
(RUSAGE_CHILDREN of a small launcher); serve's is read from /proc/PID/status (VmHWM) after a
load test of 100 requests from 8 clients.

    python benchmarks/memory.py --data ../shared/datasets/hymenoptera \
        --weights ../shared/weights/inception_v3_imagenet2015_partial_notop.weights.h5
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import common
from machine import describe, peak_rss_mib, run_measured

SIZE = "299"


def subset(data: Path, dst: Path, per_class: int) -> Path:
    """train/ (and val/ when present) with at most per_class images per class, as symlinks."""
    splits = [s for s in ("train", "val") if (data / s).is_dir()] or [""]
    for split in splits:
        for c in sorted(p for p in (data / split).iterdir() if p.is_dir()):
            (dst / split / c.name).mkdir(parents=True)
            for f in sorted(c.iterdir())[:per_class]:
                (dst / split / c.name / f.name).symlink_to(f.resolve())
    return dst


def memory(data: Path, weights: str, per_class: int = 20) -> dict:
    from inceptune.deploy.loadtest import load_test, serving

    inceptune = [sys.executable, "-m", "inceptune", "-q"]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        small = subset(data, tmp / "data", per_class)
        common = ["--weights", weights, "--image-size", SIZE, "--epochs", "5", "--cache-dir", str(tmp / "cache")]
        rows["train, frozen phase only"] = run_measured(
            [*inceptune, "train", str(small), "--out", str(tmp / "frozen"), "--fine-tune-epochs", "0", *common])
        rows["train, both phases"] = run_measured(
            [*inceptune, "train", str(small), "--out", str(tmp / "both"), "--fine-tune-epochs", "2", *common])
        images = sorted(p for p in small.rglob("*") if p.is_file())
        rows["predict"] = run_measured([*inceptune, "predict", str(tmp / "both"), str(small), "--runtime", "keras",
                                        "--csv"], stdout=__import__("subprocess").DEVNULL)
        with serving(tmp / "both", "--runtime", "keras") as (url, process):
            load = load_test(url, images[:20], requests=100, clients=8)
            if load["errors"]:
                raise RuntimeError(f"serve answered errors: {load['error_statuses']}")
            rows["serve (after 100 requests)"] = {"seconds": load["seconds"], "peak_rss_mib": peak_rss_mib(process.pid),
                                                  "p50_ms": round(load["p50_ms"]), "p95_ms": round(load["p95_ms"])}
    for name, row in rows.items():
        print(f"{name:30}{row['peak_rss_mib']:>9.0f} MiB{row['seconds']:>8.1f} s", flush=True)
    return {"image_size": int(SIZE), "images_per_class": per_class, "rows": rows}


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--per-class", type=int, default=20)
    args = parser.parse_args()
    common.save({"machine": describe(), **memory(args.data, args.weights, args.per_class)}, args.json)


if __name__ == "__main__":
    main()
