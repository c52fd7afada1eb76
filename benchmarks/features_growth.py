"""Feature extraction as the work grows: wall time and peak RSS at N, 2N and 4N images.

Each size runs `inceptune features` in a fresh process with an empty cache
(so every image goes through the network) and reads that process's peak
resident memory from the kernel. Time should grow linearly with N and memory
stay flat: images stream through bounded batches and rows stream into the
Parquet file.

    python benchmarks/features_growth.py --data ../shared/datasets/flowers5 \
        --weights ../shared/weights/inception_v3_imagenet2015_partial_notop.weights.h5 --n 100
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import common
from machine import describe, run_measured


def subset(src: Path, dst: Path, n: int) -> Path:
    """The first n images of src (all classes, round robin), copied under dst/class/."""
    classes = sorted(p for p in src.iterdir() if p.is_dir())
    files = {c: sorted(f for f in c.iterdir() if f.is_file()) for c in classes}
    taken = 0
    for i in range(max(len(v) for v in files.values())):
        for c in classes:
            if taken < n and i < len(files[c]):
                (dst / c.name).mkdir(parents=True, exist_ok=True)
                shutil.copy(files[c][i], dst / c.name / files[c][i].name)
                taken += 1
    if taken < n:
        sys.exit(f"{src} has only {taken} images; pass a smaller --n")
    return dst


def run(data: Path, weights: str, image_size: int, tmp: Path) -> dict:
    cmd = [sys.executable, "-m", "inceptune", "-q", "features", str(data), "--out", str(tmp / "f.parquet"),
           "--weights", weights, "--image-size", str(image_size), "--cache-dir", str(tmp / "cache")]
    return run_measured(cmd)


def growth(data: Path, weights: str, n: int, image_size: int = 299) -> dict:
    """Extraction at n, 2n and 4n images, each in a fresh process with an empty cache."""
    results = {}
    for factor in (1, 2, 4):
        with tempfile.TemporaryDirectory() as tmp:
            results[n * factor] = run(subset(data, Path(tmp) / "data", n * factor), weights, image_size, Path(tmp))
        r = results[n * factor]
        print(f"N={n * factor:>5}: {r['seconds']:7.1f} s  {n * factor / r['seconds']:5.1f} img/s  "
              f"peak RSS {r['peak_rss_mib']:7.1f} MiB", flush=True)
    small, large = results[n], results[4 * n]
    return {"image_size": image_size, "results": results,
            "time_ratio_4n_over_n": round(large["seconds"] / small["seconds"], 2),
            "rss_growth_4n_over_n": round(large["peak_rss_mib"] / small["peak_rss_mib"] - 1, 4)}


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=299)
    args = parser.parse_args()
    summary = {"machine": describe(), **growth(args.data, args.weights, args.n, args.image_size)}
    small, large = summary["results"][args.n], summary["results"][4 * args.n]
    print(f"4N/N time ratio {summary['time_ratio_4n_over_n']} (linear: 4); peak RSS {small['peak_rss_mib']} -> "
          f"{large['peak_rss_mib']} MiB ({100 * summary['rss_growth_4n_over_n']:+.1f}%; claim: < +10%)")
    common.save(summary, args.json)


if __name__ == "__main__":
    main()
