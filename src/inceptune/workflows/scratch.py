"""`train --arch NAME --weights none`: an Inception network trained from scratch.

    folder | X.npy + y.npy | FER-style CSV -> ArrayDataset (uint8, in memory)
        -> build_network(arch, (S, S, C)) -> fit on arrays (best val weights kept)
        -> write_evaluation (test split) -> run folder

The saved model wraps the network so that, like every inceptune model, it
takes raw RGB pixels of any size: Resizing to S x S, a fixed luminance
1x1 convolution when the network is grayscale (C = 1), Rescaling to
[0, 1], then the network. `predict`, `evaluate` and plain Keras use it as is.
"""

from __future__ import annotations

import keras
import numpy as np
from sklearn.metrics import log_loss

from inceptune import console
from inceptune.architectures.networks import build_network
from inceptune.data.arrays import LUMINANCE, ArrayDataset, is_array_source, load_arrays, to_grayscale
from inceptune.data.dataset import load_dataset
from inceptune.data.pipeline import image_batches
from inceptune.data.scan import ImageRecord
from inceptune.errors import UserError
from inceptune.evaluation.evaluate import write_evaluation
from inceptune.evaluation.metrics import as_probabilities
from inceptune.runs import RunContents, RunFolder
from inceptune.settings import Settings
from inceptune.settings.schema import WIDTH_ARCHITECTURES
from inceptune.tracking import log_run
from inceptune.training.callbacks import EpochHook, KeepBest, ProgressBar
from inceptune.workflows.result import TrainResult, default_out, say_results

# From scratch, validation loss is erratic for the first epochs while BatchNorm's moving statistics
# catch up with the fast-changing weights; stopping after 3 epochs without progress stops too soon.
SCRATCH_PATIENCE = 10


def load_scratch_data(s: Settings) -> ArrayDataset:
    """Arrays or a CSV as they are; a folder of images decoded and resized into memory."""
    d, size = s.data, s.recipe.image_size
    if is_array_source(d.data):
        return load_arrays(d.data, d.val_split, d.test_split, d.seed)
    dataset = load_dataset(d.data, d.val_split, d.test_split, d.seed, d.max_pixels)
    records = dataset.records
    images = np.zeros((len(records), size, size, 3), np.uint8)
    for batch in image_batches([r.path for r in records], size, s.recipe.batch_size, d.max_pixels):
        if batch.failures:
            index, reason = batch.failures[0]
            raise UserError(f"{records[index].path} could not be read ({reason}); it changed after the scan.")
        images[batch.positions] = np.clip(np.round(batch.images), 0, 255).astype(np.uint8)
    return ArrayDataset(dataset.root, dataset.classes, images,
                        np.array([dataset.label_index(r) for r in records]), np.array([r.split for r in records]),
                        [{"path": s.path, "reason": s.reason} for s in dataset.skipped], [r.path for r in records])


def build_scratch_model(s: Settings, shape: tuple[int, int, int], classes: int) -> tuple[keras.Model, keras.Model]:
    """(network on (H, W, C) pixels 0-255, saved model on raw RGB pixels of any size); shared layers."""
    keras.utils.set_random_seed(s.data.seed)
    options = {"width": s.scratch.width} if s.scratch.arch in WIDTH_ARCHITECTURES else {}
    network = build_network(s.scratch.arch, shape, classes, **options)
    scale = keras.layers.Rescaling(1.0 / 255, name="scale")
    pixels = keras.Input(shape, name="pixels")
    trainable = keras.Model(pixels, network(scale(pixels)), name=f"{network.name}_on_pixels")

    image = keras.Input((None, None, 3), name="image")
    x = keras.layers.Resizing(shape[0], shape[1], interpolation="bilinear", antialias=True, name="resize")(image)
    if shape[2] == 1:
        gray = keras.layers.Conv2D(1, 1, use_bias=False, trainable=False, name="to_grayscale")
        x = gray(x)
        gray.kernel.assign(np.array(LUMINANCE, np.float32).reshape(1, 1, 3, 1))
    saved = keras.Model(image, network(scale(x)), name=f"inceptune_{network.name}")
    return trainable, saved


class ScratchTrainer:
    """`train` with `--arch`: the run folder of a network trained from scratch."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def run(self) -> TrainResult:
        s = self.settings
        data = load_scratch_data(s)
        if data.images.shape[-1] != s.scratch.channels:
            data.images = to_grayscale(data.images) if s.scratch.channels == 1 else np.repeat(data.images, 3, axis=-1)
        run = RunFolder.create(s.run.out or default_out(s.data.data), overwrite=s.run.overwrite)
        console.info(f"Run folder: {run.path}")
        shape = tuple(int(v) for v in data.images.shape[1:])
        trainable, saved = build_scratch_model(s, shape, len(data.classes))
        console.info(f"Network: {s.scratch.arch}, input {shape[0]}x{shape[1]}x{shape[2]}, "
                     f"{trainable.count_params():,} parameters, from scratch.")
        history = fit_network(s, run, trainable, data)
        metrics = {split: split_metrics(trainable, data, split, s.recipe.batch_size) for split in ("val", "test")}
        contents = RunContents(saved, data.classes, "multiclass", s.as_dict(),
                               {"image_size": shape[0], "input_shape": list(shape),
                                "data_kind": "images" if data.paths else "arrays"},
                               history, [{"path": p, "label": data.classes[int(y)], "split": split, "sha256": ""}
                                         for p, y, split in zip(_paths(data), data.labels, data.splits)],
                               data.summary())
        run.write_finished(contents, metrics, lambda: self._report(run, trainable, data, metrics))
        say_results(run.path, metrics)
        if s.run.track:
            log_run(run, s.run.track, s.run.tracking_uri)
        return TrainResult(run.path, metrics)

    def _report(self, run: RunFolder, trainable: keras.Model, data: ArrayDataset, metrics: dict) -> dict | None:
        split = "test" if metrics["test"] else "val" if metrics["val"] else None
        if split is None:
            return None
        mask = data.splits == split
        records = [ImageRecord(p, data.classes[int(y)], "", split)
                   for p, y in zip(np.array(_paths(data))[mask].tolist(), data.labels[mask])]
        xs, _ = data.split(split)
        probs = trainable.predict(xs.astype("float32"), verbose=0, batch_size=self.settings.recipe.batch_size)
        write_evaluation(run.path, records, data.classes, probs, folder=run, source=f"the {split} split", images=xs)
        return {"report": {"split": split}}


def fit_network(s: Settings, run: RunFolder, trainable: keras.Model, data: ArrayDataset) -> list[dict]:
    """Adam on the training arrays; early stopping and the weights of the best validation epoch."""
    r = s.recipe
    trainable.compile(optimizer=keras.optimizers.Adam(r.learning_rate), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    (x, y), (xv, yv) = data.split("train"), data.split("val")
    validation = (xv.astype("float32"), yv) if len(yv) else None
    monitor = "val_loss" if validation else "loss"
    keep = KeepBest(monitor, float("inf"))
    callbacks = [ProgressBar("Training", r.epochs, int(np.ceil(len(y) / r.batch_size))), keep,
                 keras.callbacks.EarlyStopping(monitor=monitor, patience=max(r.patience, SCRATCH_PATIENCE)),
                 EpochHook("scratch")]
    if s.run.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run.file("tensorboard") / "scratch"), write_graph=False))
    history = trainable.fit(x.astype("float32"), y, batch_size=r.batch_size, epochs=r.epochs, shuffle=True,
                            validation_data=validation, verbose=0, callbacks=callbacks)
    return [{"phase": "scratch", "epoch": e + 1, **{k: float(v[e]) for k, v in history.history.items()},
             "learning_rate": r.learning_rate, "kept": keep.best_epoch == e} for e in range(len(history.epoch))]


def split_metrics(model: keras.Model, data: ArrayDataset, split: str, batch_size: int) -> dict | None:
    xs, ys = data.split(split)
    if not len(ys):
        return None
    probs = as_probabilities(model.predict(xs.astype("float32"), verbose=0, batch_size=batch_size))
    return {"images": int(len(ys)), "accuracy": float((probs.argmax(axis=1) == ys).mean()),
            "loss": float(log_loss(ys, probs, labels=list(range(len(data.classes)))))}


def _paths(data: ArrayDataset) -> list[str]:
    return data.paths if data.paths else [f"{data.source}#{i}" for i in range(len(data.labels))]
