"""Phase 1 (frozen base) of the classic recipe vs inceptune, same data, one run.

The reference is the seeds' recipe as the installed Keras allows:
`keras.utils.image_dataset_from_directory`, a frozen InceptionV3 base,
GlobalAveragePooling2D + Dense(1024, relu) + softmax, `model.fit` for E
epochs, so the base runs on every training and validation image every
epoch. inceptune trains the same head (`head_units=(1024,)`) for the same
epochs on the same train/ and val/ folders with an empty feature cache,
so its time includes the one feature extraction. Prints wall times, the
ratio and both validation accuracies.

    python benchmarks/phase1.py --data ../shared/datasets/hymenoptera \
        --weights ../shared/weights/inception_v3_imagenet2015_partial_notop.weights.h5 --epochs 10
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import inceptune
from inceptune import console
import common
from machine import describe

console.import_tensorflow_quietly()
import keras  # noqa: E402


def seeds_augmentation(seed: int) -> keras.Sequential:
    """The seeds' ImageDataGenerator(rotation_range=20, width/height_shift_range=0.2, shear, zoom_range=0.2,
    horizontal_flip=True) as Keras layers, applied on the fly to every training batch of every epoch."""
    return keras.Sequential([
        keras.layers.RandomFlip("horizontal", seed=seed), keras.layers.RandomRotation(20 / 360, seed=seed),
        keras.layers.RandomTranslation(0.2, 0.2, seed=seed), keras.layers.RandomShear(0.1, 0.1, seed=seed),
        keras.layers.RandomZoom(0.2, seed=seed)])


def reference_datasets(data: Path, image_size: int, seed: int, augment: bool = False):
    """The seeds' input pipeline: train/ and val/ batches of 32, preprocess_input, train batches augmented
    on the fly when `augment`; returns (train, val, number of classes)."""
    keras.utils.set_random_seed(seed)
    load = dict(image_size=(image_size, image_size), batch_size=32, label_mode="categorical", seed=seed)
    train_ds = keras.utils.image_dataset_from_directory(data / "train", shuffle=True, **load)
    val_ds = keras.utils.image_dataset_from_directory(data / "val", shuffle=False, **load)
    num_classes = len(train_ds.class_names)
    prep = keras.applications.inception_v3.preprocess_input
    if augment:
        layers = seeds_augmentation(seed)
        train_ds = train_ds.map(lambda x, y: (layers(x, training=True), y))
    return train_ds.map(lambda x, y: (prep(x), y)), val_ds.map(lambda x, y: (prep(x), y)), num_classes


def reference(data: Path, weights: str, image_size: int, epochs: int, seed: int, augment: bool = False) -> dict:
    train_ds, val_ds, num_classes = reference_datasets(data, image_size, seed, augment)
    base = keras.applications.InceptionV3(weights=weights, include_top=False, input_shape=(image_size, image_size, 3))
    base.trainable = False
    x = keras.layers.GlobalAveragePooling2D()(base.output)
    x = keras.layers.Dense(1024, activation="relu")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(base.input, outputs)
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=2)
    return {"seconds": time.perf_counter() - start, "val_accuracy": float(history.history["val_accuracy"][-1]),
            "best_val_accuracy": float(max(history.history["val_accuracy"]))}


def ours(data: Path, weights: str, image_size: int, epochs: int, seed: int, augment: bool = False) -> dict:
    extra = {"augment": "default", "aug_views": 4} if augment else {}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = inceptune.train(str(data), out=f"{tmp}/run", weights=weights, image_size=image_size, epochs=epochs,
                                 fine_tune_epochs=0, head_units=(1024,), test_split=0.0, seed=seed,
                                 cache_dir=f"{tmp}/cache", **extra)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "val_accuracy": result.metrics["val"]["accuracy"],
            "phase1_seconds": result.metrics["phase1"]["seconds"]}


def phase1(data: Path, weights: str, image_size: int = 299, epochs: int = 10, seed: int = 1337,
           augment: bool = False) -> dict:
    """Both recipes on the same folders; with `augment`, the reference augments every batch on the fly and
    inceptune caches 4 augmented views per training image (--augment default --aug-views 4)."""
    ref = reference(data, weights, image_size, epochs, seed, augment)
    inc = ours(data, weights, image_size, epochs, seed, augment)
    return {"data": str(data), "image_size": image_size, "epochs": epochs, "augment": augment, "reference": ref,
            "inceptune": inc, "speedup": round(ref["seconds"] / inc["seconds"], 2)}


def print_table(result: dict) -> None:
    ref, inc = result["reference"], result["inceptune"]
    print(f"\nphase 1, {result['epochs']} epochs at {result['image_size']}x{result['image_size']} on {result['data']}"
          + (", with augmentation" if result.get("augment") else ""))
    print(f"{'':12}{'wall s':>10}{'val acc':>10}")
    print(f"{'reference':12}{ref['seconds']:>10.1f}{ref['val_accuracy']:>10.4f}")
    print(f"{'inceptune':12}{inc['seconds']:>10.1f}{inc['val_accuracy']:>10.4f}")
    print(f"speedup: {result['speedup']:.1f}x")


def main() -> None:
    parser = common.parser(__doc__, "a folder with train/ and val/ class folders")
    parser.add_argument("--image-size", type=int, default=299)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--augment", action="store_true", help="both sides augment (see phase1())")
    args = parser.parse_args()
    result = {"machine": describe(), **phase1(args.data, args.weights, args.image_size, args.epochs, args.seed,
                                              args.augment)}
    print_table(result)
    common.save(result, args.json)


if __name__ == "__main__":
    main()
