"""End-to-end inference from a folder of JPEGs as users have them: the reference recipe against inceptune's runtimes.

The photos are the data folder's own files at their natural sizes (flowers5:
240 to 500 pixels a side), never pre-resized, so both sides decode and
resize every one. The reference is what the seeds do: `keras.utils.load_img`
(PIL) each file at 299x299, `img_to_array`, `preprocess_input`,
`model.predict` on batches, with the seeds' model (frozen InceptionV3 + GAP +
Dense(1024) + softmax). inceptune's run is made by a plain `train` of the
whole data folder (its default `--export auto`: no manual export), and the
same JPEGs go through `inceptune.predict`'s own path (parallel decoding that
overlaps with inference, then the runtime) for keras, each export `train`
kept, and auto (what `inceptune predict` uses). Both sides load their model
and run one warm-up batch before the clock starts; the clock covers reading,
decoding, resizing and inference of every image. Also printed: the int8
export's accuracy against FP32 on the run's held-out photos, each figure as
a fraction of the machine's FP32 peak (cores x nominal clock x FMA width)
and of a measured SGEMM ceiling (see machine.py), at 11.46 GFLOP per
299x299 image.

    python benchmarks/inference.py --data ../shared/datasets/flowers5 \
        --weights ../shared/weights/inception_v3_imagenet2015_partial_notop.weights.h5 --images 192 \
        [--run RUN (reuse a run made by an earlier call)] [--cache DIR] [--other ../shared/datasets/hymenoptera/val]

Printed beside the speeds: how long `train`'s exports took against the training before them, and the
default runtime (auto) against the FP32 Keras model on every output a user sees, on the run's test photos
and on photos of other kinds (--other): top-1 agreement, the largest probability difference, the "none of
these" rates and the OOD score's AUROC of each.
"""

from __future__ import annotations

import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import inceptune
from inceptune import console

console.import_tensorflow_quietly()
import keras  # noqa: E402

import common
from machine import INCEPTION_V3_GFLOP, describe, fp32_peak  # noqa: E402

SIZE = 299


def photos(src: Path, count: int) -> list[Path]:
    """`count` of src's own photo files, round robin over its class folders, untouched."""
    classes = sorted(p for p in src.iterdir() if p.is_dir())
    files = {c: sorted(f for f in c.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png")) for c in classes}
    chosen = []
    for i in range(max(map(len, files.values()))):
        chosen += [files[c][i] for c in classes if i < len(files[c])]
    return chosen[:count]


def make_run(data: Path, weights: str, out: Path, cache: str | None) -> tuple[Path, dict]:
    """A plain `train` of the whole data folder: its defaults, then the exports `--export auto` ends with, timed
    apart (the same steps as one `train`, whose metrics.json would also name the deployed runtime)."""
    from inceptune.deploy.auto_export import export_fastest

    start = time.perf_counter()
    inceptune.train(str(data), out=str(out), weights=weights, export="none",
                    **({"cache_dir": cache} if cache else {}))
    trained = time.perf_counter()
    export_fastest(out)
    done = time.perf_counter()
    return out, {"train_s": round(trained - start, 1), "export_s": round(done - trained, 1),
                 "export_share": round((done - trained) / (done - start), 3)}


def agreement(run: Path, others: list[Path]) -> dict:
    """The default runtime (auto) against the FP32 Keras model on every output a user sees, on the run's test
    photos (never trained on, never used to choose) and on photos of other kinds: top-1, probabilities, the
    "none of these" rates, and the OOD score's AUROC (known against other kinds) of each."""
    from sklearn.metrics import roc_auc_score

    known = [row["path"] for row in csv.DictReader(open(run / "manifest.csv")) if row["split"] == "test"]
    others = [str(p) for p in others]
    answers = {}
    for runtime in ("keras", "auto"):
        model = inceptune.load(str(run), runtime=runtime)
        answers[runtime] = {"name": model.runtime, "known": model.predict(known), "others": model.predict(others)}
    exact, fast = answers["keras"], answers["auto"]
    pairs = [(a, b) for kind in ("known", "others") for a, b in zip(exact[kind], fast[kind])]
    result = {"runtime": fast["name"], "known_photos": len(known), "other_photos": len(others),
              "top1_agreement": float(np.mean([a["top"][0]["label"] == b["top"][0]["label"] for a, b in pairs])),
              "max_probability_diff": max(abs(a["probabilities"][c] - b["probabilities"][c])
                                          for a, b in pairs for c in a["probabilities"])}
    for runtime, got in answers.items():
        if not others or "ood_score" not in got["known"][0]:
            continue
        scores = [r["ood_score"] for r in got["known"] + got["others"]]
        result[runtime] = {"unknown_known": float(np.mean([r["unknown"] for r in got["known"]])),
                           "unknown_others": float(np.mean([r["unknown"] for r in got["others"]])),
                           "ood_auroc": float(roc_auc_score([0] * len(known) + [1] * len(others), scores))}
    return result


def reference(paths: list[Path], weights: str, classes: int, batch_size: int) -> float:
    """Images per second of the seeds' predict loop."""
    base = keras.applications.InceptionV3(weights=weights, include_top=False, input_shape=(SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(base.output)
    x = keras.layers.Dense(1024, activation="relu")(x)
    model = keras.Model(base.input, keras.layers.Dense(classes, activation="softmax")(x))
    preprocess = keras.applications.inception_v3.preprocess_input
    model.predict(np.zeros((batch_size, SIZE, SIZE, 3), "float32"), verbose=0)
    start = time.perf_counter()
    for i in range(0, len(paths), batch_size):
        batch = np.stack([keras.utils.img_to_array(keras.utils.load_img(p, target_size=(SIZE, SIZE)))
                          for p in paths[i:i + batch_size]])
        model.predict(preprocess(batch), verbose=0)
    return len(paths) / (time.perf_counter() - start)


def ours(run: Path, paths: list[Path], runtime: str, batch_size: int) -> tuple[float, str]:
    """Images per second of inceptune.predict's path on `runtime`, and the runtime that answered."""
    import inceptune

    model = inceptune.load(str(run), runtime=runtime)
    model.infer(np.zeros((batch_size, SIZE, SIZE, 3), "float32"))
    start = time.perf_counter()
    proba = model.predict_proba([str(p) for p in paths], batch_size=batch_size)
    assert not proba.failed
    return len(paths) / (time.perf_counter() - start), model.runtime


def benchmark(data: Path, weights: str, images: int, batch_size: int = 32, run: Path | None = None,
              cache: str | None = None, other: Path | None = None) -> dict:
    peak = fp32_peak()
    with tempfile.TemporaryDirectory() as tmp:
        paths = photos(data, images)
        cost = None
        if run is None or not (run / "model.keras").is_file():
            run, cost = make_run(data, weights, run or Path(tmp) / "run", cache)
        checks = agreement(run, photos(other, 10**6) if other else [])
        exports = {p.name: json.loads((p / "export.json").read_text())
                   for p in sorted((run / "export").iterdir()) if (p / "export.json").is_file()}
        console.set_quiet(True)
        rows = {"reference": {"images_per_s": reference(paths, weights, len(list(data.iterdir())), batch_size),
                              "runtime": "keras (seeds' loop)"}}
        for runtime in ("keras", *exports, "auto"):
            speed, used = ours(run, paths, runtime, batch_size)
            rows[f"inceptune {runtime}"] = {"images_per_s": speed, "runtime": used}
        console.set_quiet(False)
    for row in rows.values():
        row["ratio"] = round(row["images_per_s"] / rows["reference"]["images_per_s"], 2)
        row["fraction_of_fp32_peak"] = round(row["images_per_s"] * INCEPTION_V3_GFLOP / peak["gflops"], 3)
        row["fraction_of_sgemm"] = round(row["images_per_s"] * INCEPTION_V3_GFLOP / peak["sgemm_gflops"], 3)
        row["images_per_s"] = round(row["images_per_s"], 2)
    sizes = [Image.open(p).size for p in paths]
    return {"images": len(paths), "batch_size": batch_size, "image_size": SIZE, "fp32_peak": peak, "rows": rows,
            "photo_sides": [min(min(s) for s in sizes), max(max(s) for s in sizes)],
            "ratio_auto": rows["inceptune auto"]["ratio"], "auto": rows["inceptune auto"]["runtime"],
            "accuracy_checks": {name: r["accuracy"] for name, r in exports.items() if r.get("accuracy")},
            "train_cost": cost, "agreement": checks}


def print_table(result: dict) -> None:
    peak = result["fp32_peak"]
    print(f"\ninference, {result['images']} JPEGs at {SIZE}x{SIZE}, batch {result['batch_size']}; FP32 peak "
          f"{peak['gflops']} GFLOP/s = {peak['assumption']} at the nominal clock; measured SGEMM "
          f"{peak['sgemm_gflops']} GFLOP/s")
    print(f"{'':22}{'runtime':>22}{'img/s':>9}{'ratio':>8}{'of peak':>9}{'of SGEMM':>10}")
    for name, row in result["rows"].items():
        print(f"{name:22}{row['runtime']:>22}{row['images_per_s']:>9.2f}{row['ratio']:>7.2f}x"
              f"{100 * row['fraction_of_fp32_peak']:>8.1f}%{100 * row['fraction_of_sgemm']:>9.1f}%")
    for name, check in result["accuracy_checks"].items():
        print(f"{name}: {check['metric']} on {check['images']} held-out photos ({check['split']} split) "
              f"{check['fp32']:.4f} FP32 -> {check['quantized']:.4f}, drop {100 * check['drop']:.2f} points "
              f"(at most {100 * check['max_drop']:.2f}; {check['method']})")
    print(f"photos at natural sizes, {result['photo_sides'][0]} to {result['photo_sides'][1]} px a side")
    cost, checks = result["train_cost"], result["agreement"]
    if cost:
        print(f"train {cost['train_s']:.1f}s, then its exports {cost['export_s']:.1f}s: "
              f"{100 * cost['export_share']:.1f}% of the whole")
    print(f"auto ({checks['runtime']}) against keras on {checks['known_photos']} test photos and "
          f"{checks['other_photos']} of other kinds: top-1 agreement {100 * checks['top1_agreement']:.1f}%, "
          f"largest probability difference {checks['max_probability_diff']:.3f}")
    for runtime in ("keras", "auto"):
        if runtime in checks:
            c = checks[runtime]
            print(f"  {runtime:6} 'none of these': {100 * c['unknown_known']:.1f}% of test photos, "
                  f"{100 * c['unknown_others']:.1f}% of other kinds; OOD AUROC {c['ood_auroc']:.3f}")
    print(f"inceptune predict --runtime auto ({result['auto']}) / reference: {result['ratio_auto']:.2f}x")


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--run", type=Path, help="the run to time: made here by a plain train when it does not exist")
    parser.add_argument("--cache", help="feature cache of that train (default: inceptune's)")
    parser.add_argument("--other", type=Path, help="photos of other kinds (class folders), e.g. hymenoptera/val")
    args = parser.parse_args()
    result = {"machine": describe(), **benchmark(args.data, args.weights, args.images, args.batch_size, args.run,
                                                 args.cache, args.other)}
    print_table(result)
    common.save(result, args.json)


if __name__ == "__main__":
    main()
