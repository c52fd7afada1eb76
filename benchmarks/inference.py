"""End-to-end inference from a folder of JPEGs: the reference recipe against each inceptune runtime.

The reference is what the seeds do: `keras.utils.load_img` (PIL) each file
at 299x299, `img_to_array`, `preprocess_input`, `model.predict` on batches,
with the seeds' model (frozen InceptionV3 + GAP + Dense(1024) + softmax).
inceptune runs the same JPEGs through `inceptune.predict`'s own path
(parallel decoding that overlaps with inference, then the runtime) for each
runtime: keras, onnx, openvino, and auto (what `inceptune predict` uses).
Both sides load their model and run one warm-up batch before the clock
starts; the clock covers reading, decoding, resizing and inference of every
image. Also printed: each figure as a fraction of the machine's FP32 peak
(cores x nominal clock x FMA width) and of a measured SGEMM ceiling (see
machine.py), at 11.46 GFLOP per 299x299 image.

    python benchmarks/inference.py --data ../shared/datasets/flowers5 \
        --weights ../shared/weights/inception_v3_imagenet2015_partial_notop.weights.h5 --images 192
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import inceptune

inceptune._import_tensorflow_quietly()
import keras  # noqa: E402

import common
from machine import INCEPTION_V3_GFLOP, describe, fp32_peak  # noqa: E402

SIZE = 299
RUNTIMES = ("keras", "onnx", "openvino", "auto")


def jpeg_folder(src: Path, dst: Path, count: int) -> list[Path]:
    """`count` photos of src (round robin over its class folders) saved as 299x299 JPEGs under dst/class/."""
    classes = sorted(p for p in src.iterdir() if p.is_dir())
    files = {c: sorted(f for f in c.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png")) for c in classes}
    written = []
    for i in range(max(map(len, files.values()))):
        for c in classes:
            if len(written) < count and i < len(files[c]):
                target = dst / c.name / f"{files[c][i].stem}.jpg"
                target.parent.mkdir(parents=True, exist_ok=True)
                Image.open(files[c][i]).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR).save(target, quality=90)
                written.append(target)
    return written


def make_run(photos: Path, weights: str, tmp: Path) -> Path:
    """A small run at 299x299 with ONNX and OpenVINO exports (its accuracy does not matter here)."""
    small = tmp / "train-subset"
    for c in sorted(p for p in photos.iterdir() if p.is_dir()):
        (small / c.name).mkdir(parents=True)
        for f in sorted(c.iterdir())[:6]:
            (small / c.name / f.name).symlink_to(f)
    run = tmp / "run"
    inceptune.train(str(small), out=str(run), weights=weights, image_size=SIZE, epochs=2, fine_tune_epochs=0,
                    test_split=0.0, cache_dir=str(tmp / "cache"))
    for fmt in ("onnx", "openvino"):
        inceptune.export(str(run), fmt)
    return run


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


def benchmark(data: Path, weights: str, images: int, batch_size: int = 32) -> dict:
    peak = fp32_peak()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = jpeg_folder(data, tmp / "photos", images)
        run = make_run(tmp / "photos", weights, tmp)
        inceptune.console.set_quiet(True)
        rows = {"reference": {"images_per_s": reference(paths, weights, len(list(data.iterdir())), batch_size),
                              "runtime": "keras (seeds' loop)"}}
        for runtime in RUNTIMES:
            speed, used = ours(run, paths, runtime, batch_size)
            rows[f"inceptune {runtime}"] = {"images_per_s": speed, "runtime": used}
        inceptune.console.set_quiet(False)
    for row in rows.values():
        row["ratio"] = round(row["images_per_s"] / rows["reference"]["images_per_s"], 2)
        row["fraction_of_fp32_peak"] = round(row["images_per_s"] * INCEPTION_V3_GFLOP / peak["gflops"], 3)
        row["fraction_of_sgemm"] = round(row["images_per_s"] * INCEPTION_V3_GFLOP / peak["sgemm_gflops"], 3)
        row["images_per_s"] = round(row["images_per_s"], 2)
    return {"images": images, "batch_size": batch_size, "image_size": SIZE, "fp32_peak": peak, "rows": rows,
            "ratio_auto": rows["inceptune auto"]["ratio"]}


def print_table(result: dict) -> None:
    peak = result["fp32_peak"]
    print(f"\ninference, {result['images']} JPEGs at {SIZE}x{SIZE}, batch {result['batch_size']}; FP32 peak "
          f"{peak['gflops']} GFLOP/s = {peak['assumption']} at the nominal clock; measured SGEMM "
          f"{peak['sgemm_gflops']} GFLOP/s")
    print(f"{'':22}{'runtime':>22}{'img/s':>9}{'ratio':>8}{'of peak':>9}{'of SGEMM':>10}")
    for name, row in result["rows"].items():
        print(f"{name:22}{row['runtime']:>22}{row['images_per_s']:>9.2f}{row['ratio']:>7.2f}x"
              f"{100 * row['fraction_of_fp32_peak']:>8.1f}%{100 * row['fraction_of_sgemm']:>9.1f}%")
    print(f"inceptune predict --runtime auto / reference: {result['ratio_auto']:.2f}x")


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    result = {"machine": describe(), **benchmark(args.data, args.weights, args.images, args.batch_size)}
    print_table(result)
    common.save(result, args.json)


if __name__ == "__main__":
    main()
