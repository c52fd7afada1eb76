"""Phase 2 (fine-tuning the top blocks, with augmentation) of the classic recipe vs inceptune, same data, one run.

The reference is the seeds' fine-tuning step as the installed Keras allows:
InceptionV3 + GlobalAveragePooling2D + Dense(1024, relu) + softmax,
`model.layers[:249]` frozen and `[249:]` trainable (mixed9 on, BatchNorm
included), SGD(1e-4, momentum 0.9), every training batch augmented on the
fly, E epochs with validation. Only its fine-tuning fit is timed.

inceptune runs the same top blocks for the same E epochs in two modes and
reports `metrics.json`'s phase-2 seconds (tracing and the starting
validation included):

    online  --augment default --fine-tune-augment online: fresh augmentation every epoch through the
            whole base, validation on cached activations (the default with --augment)
    views   --augment default --aug-views 4 --fine-tune-augment views: the activations cached with 4
            augmented views per image, no base pass at all

Accuracies are not compared: the reference starts phase 2 from an untrained
head, inceptune from the head its phase 1 trained.

    python benchmarks/phase2.py --data ../shared/datasets/hymenoptera \
        --weights ../shared/weights/inception_v3_imagenet2015_partial_notop.weights.h5 --epochs 3
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import inceptune
from inceptune import console
import common
from machine import describe
from phase1 import reference_datasets

console.import_tensorflow_quietly()
import keras  # noqa: E402

MODES = {"online": {"fine_tune_augment": "online", "aug_views": 0},
         "views": {"fine_tune_augment": "views", "aug_views": 4}}


def reference(data: Path, weights: str, image_size: int, epochs: int, seed: int) -> dict:
    train_ds, val_ds, num_classes = reference_datasets(data, image_size, seed, augment=True)
    base = keras.applications.InceptionV3(weights=weights, include_top=False, input_shape=(image_size, image_size, 3))
    x = keras.layers.GlobalAveragePooling2D()(base.output)
    x = keras.layers.Dense(1024, activation="relu")(x)
    model = keras.Model(base.input, keras.layers.Dense(num_classes, activation="softmax")(x))
    for layer in model.layers[:249]:
        layer.trainable = False
    for layer in model.layers[249:]:
        layer.trainable = True
    model.compile(optimizer=keras.optimizers.SGD(1e-4, momentum=0.9), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=2)
    return {"seconds": time.perf_counter() - start}


def ours(data: Path, weights: str, image_size: int, epochs: int, seed: int, mode: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = inceptune.train(str(data), out=f"{tmp}/run", weights=weights, image_size=image_size, epochs=5,
                                 fine_tune_epochs=epochs, patience=epochs, head_units=(1024,), test_split=0.0,
                                 seed=seed, cache_dir=f"{tmp}/cache", augment="default", tensorboard=False,
                                 **MODES[mode])
    m = result.metrics
    return {"seconds": m["phase2"]["seconds"], "examples_per_epoch": m["phase2"]["examples_per_epoch"],
            "inputs": m["phase2"]["inputs"], "val_accuracy": m["val"]["accuracy"]}


def phase2(data: Path, weights: str, image_size: int = 299, epochs: int = 3, seed: int = 1337) -> dict:
    ref = reference(data, weights, image_size, epochs, seed)
    result = {"data": str(data), "image_size": image_size, "epochs": epochs, "reference": ref}
    for mode in MODES:
        result[mode] = ours(data, weights, image_size, epochs, seed, mode)
        result[mode]["speedup"] = round(ref["seconds"] / result[mode]["seconds"], 2)
    return result


def print_table(result: dict) -> None:
    print(f"\nphase 2 with augmentation, {result['epochs']} epochs from mixed9 at "
          f"{result['image_size']}x{result['image_size']} on {result['data']}")
    print(f"{'':22}{'wall s':>10}{'s/epoch':>10}{'vs ref':>9}  trains on")
    ref = result["reference"]
    print(f"{'reference (seeds)':22}{ref['seconds']:>10.1f}{ref['seconds'] / result['epochs']:>10.1f}{'1.00x':>9}"
          "  augmented images, every epoch")
    for mode in MODES:
        r = result[mode]
        print(f"{'inceptune ' + mode:22}{r['seconds']:>10.1f}{r['seconds'] / result['epochs']:>10.1f}"
              f"{r['speedup']:>8.2f}x  {r['examples_per_epoch']} {r['inputs']} per epoch")


def main() -> None:
    parser = common.parser(__doc__, "a folder with train/ and val/ class folders")
    parser.add_argument("--image-size", type=int, default=299)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1337)
    args = parser.parse_args()
    result = {"machine": describe(), **phase2(args.data, args.weights, args.image_size, args.epochs, args.seed)}
    print_table(result)
    common.save(result, args.json)


if __name__ == "__main__":
    main()
