"""Every benchmark in one run: a table of ratios on stdout, all figures as JSON.

    python benchmarks/run.py [--quick] [--json benchmarks/results.json]

Sections (each also runs alone, see its script):
  phase1     the classic recipe's frozen-base training vs `inceptune train` (phase1.py)
  phase2     the classic recipe's fine-tuning with augmentation vs inceptune's two phase-2 modes
             (phase2.py; full run only, about 10 minutes on 2 cores)
  inference  end-to-end JPEG inference, reference vs each runtime, fraction of FP32 peak (inference.py)
  growth     feature extraction time and peak RSS at N, 2N, 4N images (features_growth.py)
  memory     peak RSS of train, predict and serve (memory.py)

--quick keeps the whole run under 15 minutes on a 2-core CPU: phase 1 (without
augmentation; the full run adds the augmented comparison) on the
full hymenoptera (a subset would let inceptune's fixed costs, such as
writing the report, weigh more than they do in real use), 64 images for
inference, N = 25 for growth, 20 images per class for memory. Without it:
192 images, N = 100, 40 per class.
Data and weights default to ../shared (beside the project root).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from machine import describe  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"
SECTIONS = ("phase1", "phase2", "inference", "growth", "memory")
SIZES = {"quick": {"inference": 64, "growth": 25, "memory": 20},
         "full": {"inference": 192, "growth": 100, "memory": 40}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes; under 15 minutes on 2 cores")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only this section (repeatable)")
    parser.add_argument("--weights", default=str(SHARED / "weights" / "inception_v3_imagenet2015_partial_notop.weights.h5"))
    parser.add_argument("--hymenoptera", type=Path, default=SHARED / "datasets" / "hymenoptera")
    parser.add_argument("--flowers", type=Path, default=SHARED / "datasets" / "flowers5")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results.json"))
    args = parser.parse_args()
    for needed in (Path(args.weights), args.hymenoptera, args.flowers):
        if not needed.exists():
            sys.exit(f"error: {needed} is missing; pass --weights, --hymenoptera and --flowers.")
    sizes = SIZES["quick" if args.quick else "full"]
    sections = args.only or SECTIONS
    results = {"machine": describe(), "mode": "quick" if args.quick else "full", "sizes": sizes}
    started = time.perf_counter()
    if "phase1" in sections:
        from phase1 import phase1, print_table

        results["phase1"] = phase1(args.hymenoptera, args.weights, epochs=10)
        print_table(results["phase1"])
        if not args.quick:  # another ~8 minutes on 2 cores: the full run only
            results["phase1_augmented"] = phase1(args.hymenoptera, args.weights, epochs=10, augment=True)
            print_table(results["phase1_augmented"])
    if "phase2" in sections and (not args.quick or args.only):
        from phase2 import phase2
        from phase2 import print_table as print_phase2

        results["phase2"] = phase2(args.hymenoptera, args.weights, epochs=3)
        print_phase2(results["phase2"])
    if "inference" in sections:
        import inference

        results["inference"] = inference.benchmark(args.flowers, args.weights, sizes["inference"])
        inference.print_table(results["inference"])
    if "growth" in sections:
        from features_growth import growth

        print(f"\nfeature extraction growth, N = {sizes['growth']}")
        results["growth"] = growth(args.flowers, args.weights, sizes["growth"])
    if "memory" in sections:
        from memory import memory

        print("\npeak RSS")
        results["memory"] = memory(args.hymenoptera, args.weights, sizes["memory"])
    results["seconds"] = round(time.perf_counter() - started, 1)
    summary(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwrote {args.json} ({results['seconds'] / 60:.1f} min)")


def summary(results: dict) -> None:
    print(f"\nsummary on {results['machine']} ({results['mode']})")
    for key, label, claim in (("phase1", "phase 1, 10 epochs:  ", "; claim >= 8x"),
                              ("phase1_augmented", "  ... augmented:     ", "")):
        if key in results:
            r = results[key]
            print(f"  {label} {r['speedup']:.1f}x the reference (val acc {r['inceptune']['val_accuracy']:.3f} "
                  f"vs {r['reference']['val_accuracy']:.3f}){claim}")
    if "phase2" in results:
        r = results["phase2"]
        print(f"  phase 2, augmented:    online {r['online']['speedup']:.2f}x, views {r['views']['speedup']:.2f}x "
              "the reference's fine-tuning")
    if "inference" in results:
        r = results["inference"]
        auto = r["rows"]["inceptune auto"]
        print(f"  inference at 299:     {r['ratio_auto']:.2f}x the reference ({auto['runtime']}), "
              f"{100 * auto['fraction_of_fp32_peak']:.0f}% of FP32 peak at nominal clock, "
              f"{100 * auto['fraction_of_sgemm']:.0f}% of measured SGEMM; claim >= 1.3x")
    if "growth" in results:
        r = results["growth"]
        print(f"  extraction N -> 4N:   time x{r['time_ratio_4n_over_n']}, peak RSS "
              f"{100 * r['rss_growth_4n_over_n']:+.1f}%; claim < +10%")
    if "memory" in results:
        rows = results["memory"]["rows"]
        print("  peak RSS:             " + ", ".join(f"{k} {v['peak_rss_mib']:.0f} MiB" for k, v in rows.items()))


if __name__ == "__main__":
    main()
