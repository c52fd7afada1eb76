"""The recipe's two phases, each a small Keras fit on cached data.

Phase 1 trains the new head on pooled features of the frozen base. Phase 2
unfreezes the backbone from a named block (at once or gradually, see
training/unfreezing.py) and fine-tunes it, with the head, on the cached
activations that enter that block: without on-the-fly augmentation this is
exactly fine-tuning on the images, without running the frozen part of the
network again. With it (`--fine-tune-augment online`), phase 2 trains on
freshly augmented images through the whole network every epoch and still
validates on cached activations. Both phases keep the weights of their
best validation epoch; phase 2 keeps phase 1's weights if it never beats them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from pathlib import Path

import keras

from inceptune import console
from inceptune.engines.devices import Strategy
from inceptune.errors import UserError
from inceptune.models.backbone import freeze
from inceptune.models.classifier import Classifier, refresh_normalization
from inceptune.training.callbacks import (
    EpochCheckpoint,
    EpochHook,
    EpochSeeds,
    KeepBest,
    ProgressBar,
    ResumableEarlyStopping,
    ValidateWith,
)
from inceptune.training.checkpoint import Checkpoint
from inceptune.training.schedules import learning_rate as scheduled
from inceptune.training.data import CachedFeatures, ImageBatches
from inceptune.training.unfreezing import GradualUnfreezing, Unfreezing


def train_head(classifier: Classifier, train: CachedFeatures, val: CachedFeatures | None,
               epochs: int, learning_rate: float, log_dir: Path | None = None,
               class_weight: dict[int, float] | None = None, resume: "Resume | None" = None,
               schedule: tuple[str, int] = ("constant", 0), weight_decay: float = 0.0,
               strategy: Strategy = Strategy()) -> list[dict]:
    """Phase 1: standardise pooled features, then fit the head alone on them (in memory when they fit);
    with `weight_decay`, by AdamW; under `strategy` (a replica of the head on a cluster)."""
    freeze(classifier.backbone, None)
    train.load_if_small()
    if not classifier.adapted:
        classifier.adapt(train.features())
    return _fit("head", classifier.head_model(), train, val, epochs, learning_rate, classifier, log_dir=log_dir,
                class_weight=class_weight, resume=resume, schedule=schedule, weight_decay=weight_decay,
                strategy=strategy)


def fine_tune(classifier: Classifier, unfreezing: Unfreezing, train: CachedFeatures | ImageBatches,
              val: CachedFeatures | None, epochs: int, learning_rate: float, patience: int,
              log_dir: Path | None = None, class_weight: dict[int, float] | None = None,
              resume: "Resume | None" = None, schedule: tuple[str, int] = ("constant", 0),
              augment: keras.Model | None = None, strategy: Strategy = Strategy()) -> list[dict]:
    """Phase 2: fine-tune the blocks `unfreezing` names, with the head, at a low learning rate, under `strategy`.

    `train` holds the cached activations entering `unfreezing.deepest`, or,
    with `augment`, images augmented on the fly; `val` is cached activations.
    """
    unfreezing.apply(unfreezing.deepest)  # every variable the phase will train, for the optimizer to build
    top = classifier.top_model(unfreezing.deepest, unfreezing.train_batchnorm)
    model = top if augment is None else classifier.image_model(augment, unfreezing.train_batchnorm)
    state = resume.state if resume and resume.state and resume.state["phase"] == "fine-tune" else None
    stop = ResumableEarlyStopping(monitor="val_loss" if val else "loss", patience=patience,
                                  restored=state["stop"] if state else None)
    return _fit("fine-tune", model, train, val, epochs, learning_rate, classifier, stop=stop, log_dir=log_dir,
                class_weight=class_weight, resume=resume, schedule=schedule, unfreezing=unfreezing,
                evaluator=None if augment is None else top, strategy=strategy)


class Resume:
    """Checkpointing of a run (after every epoch), and the interrupted run's state when resuming."""

    def __init__(self, checkpoint: Checkpoint, state: dict | None, seed: int = 0):
        self.checkpoint, self.state, self.seed = checkpoint, state, seed
        self.earlier_rows: list[dict] = []  # the finished phase's history, kept in the checkpoint


def _fit(phase: str, model: keras.Model, train: CachedFeatures, val: CachedFeatures | None, epochs: int,
         learning_rate: float, classifier: Classifier, stop: ResumableEarlyStopping | None = None,
         log_dir: Path | None = None, class_weight: dict[int, float] | None = None,
         resume: Resume | None = None, schedule: tuple[str, int] = ("constant", 0),
         unfreezing: Unfreezing | None = None, evaluator: keras.Model | None = None,
         weight_decay: float = 0.0, strategy: Strategy = Strategy()) -> list[dict]:
    """Fit `model` for one phase; `evaluator` (sharing its weights) validates instead of `model` when given.

    When `strategy` is a multi-worker cluster's, a replica of `model` with mirrored variables trains
    (engines/cluster.py), and `model` takes its weights at the end."""
    cluster, trained, original = strategy.cluster, model, model
    if cluster is not None:
        if evaluator is not None:
            raise UserError("--distribute multi-worker fine-tunes on cached activations; --fine-tune-augment online "
                            "is not supported on a cluster (use views or none).")
        trained = cluster.replica(model)
        if unfreezing is not None:  # the replica's own layers unfreeze, block by block
            part = trained.get_layer(f"backbone_from_{unfreezing.deepest}")
            unfreezing = dataclasses.replace(unfreezing, backbone=part)
            unfreezing.apply(unfreezing.deepest)
    steps = cluster.steps(train) if cluster else len(train)
    rate = scheduled(learning_rate, schedule[0], epochs, steps, schedule[1])
    with cluster.scope() if cluster else contextlib.nullcontext():
        optimizer = (unfreezing.optimizer(rate) if unfreezing
                     else keras.optimizers.AdamW(rate, weight_decay=weight_decay) if weight_decay > 0
                     else keras.optimizers.Adam(rate))
        trained.compile(optimizer=optimizer, loss=classifier.loss(), metrics=classifier.metrics())
        trained.optimizer.build(trained.trainable_variables)  # for fine-tuning: every variable the phase will train
    if cluster is not None:
        cluster.compiled(trained, train[0])
    model = trained
    if evaluator is not None:
        evaluator.compile(loss=classifier.loss(), metrics=classifier.metrics())

    def rate_at(epoch: int) -> float:  # the rate of the epoch's last step
        return float(rate((epoch + 1) * steps - 1)) if callable(rate) else rate

    def stage(epoch: int) -> dict:  # the lowest block trained in the epoch, for history.csv
        return {"unfrozen_from": unfreezing.block_at(epoch)} if unfreezing else {}

    extra = [stop] if stop else []
    if isinstance(train, CachedFeatures):
        train.load_if_small()
    if val is not None:
        val.load_if_small()
    validate = None
    if evaluator is not None and val is not None:  # validation by the evaluator, before anything reads val_loss
        validate, val = ValidateWith(evaluator, val), None
    monitor = "val_loss" if val or validate else "loss"
    rows, start = [], 0
    state = resume.state if resume and resume.state and resume.state["phase"] == phase else None
    if state:  # a resumed run: this phase's finished epochs come back, none is redone
        # Restored before anything runs the model: a traced Keras function would keep the old
        # Normalization constants.
        with cluster.scope() if cluster else contextlib.nullcontext():
            best = resume.checkpoint.restore(phase, model)
        rows, start = state["rows"], state["epochs_done"]
        train.set_epoch(start)
        baseline = math.inf
        console.info(f"Resuming {phase} after epoch {start} of {epochs}: its {start} finished epochs are not redone.")
    elif phase == "head":
        baseline = math.inf
    elif validate is not None:
        baseline = validate.loss()
    else:  # the loss of the weights this phase starts from: phase 1's result
        with cluster.running("the phase's first evaluation") if cluster else contextlib.nullcontext():
            baseline = model.evaluate(val if val else train, verbose=0, return_dict=True)["loss"]
    if unfreezing is not None:
        first = unfreezing.block_at(start)
        unfreezing.apply(first)
        extra.append(GradualUnfreezing(unfreezing, first))
    keep, timer = KeepBest(monitor, baseline), _EpochTimer()
    if state:
        keep.restore(state["best"]["loss"], state["best"]["epoch"], best)
    if log_dir is not None:  # TensorBoard: `tensorboard --logdir RUN/tensorboard`
        extra.append(keras.callbacks.TensorBoard(str(Path(log_dir) / phase), write_graph=False))
    if resume is not None:
        extra.append(EpochSeeds(resume.seed))

        def save(epoch: int, logs: dict) -> None:
            rows.append({"phase": phase, "epoch": epoch + 1, **{k: float(v) for k, v in logs.items()},
                         "learning_rate": rate_at(epoch), "seconds": round(timer.seconds[-1], 3), **stage(epoch)})
            resume.checkpoint.save(phase, epoch + 1, rows, model, {"loss": keep.best, "epoch": keep.best_epoch},
                                   keep.best_weights, stop.state() if stop else None, resume.earlier_rows)

        extra.append(EpochCheckpoint(save))
    data, sharded = train, {}
    if cluster is not None:  # each worker reads its rows of every batch, epoch after epoch
        data, class_weight = cluster.sharded(train, epochs - start, class_weight), None
        sharded = {"steps_per_epoch": steps}
    with cluster.running(f"the {phase} phase") if cluster else contextlib.nullcontext():
        history = model.fit(
            data, shuffle=False,  # the data shuffles itself by (seed, epoch), so a resumed epoch sees the same batches
            validation_data=val, epochs=epochs, initial_epoch=start, verbose=0, class_weight=class_weight, **sharded,
            callbacks=[*([validate] if validate else []), ProgressBar(phase.capitalize(), epochs - start, steps), keep,
                       timer, *extra, EpochHook(phase)],
        )
    if cluster is not None:
        mine, everyone = cluster.rows_read
        console.info(f"Worker {cluster.index} read {mine} of the {everyone} training rows of the {phase} phase's "
                     "batches (its shard).")
    if original is not model:  # the cluster's replica trained: its (best) weights go back to the classifier
        original.set_weights(model.get_weights())
        refresh_normalization(original)
    if resume is None:  # without checkpointing, the rows come from Keras' history
        for i, epoch in enumerate(history.epoch):
            rows.append({"phase": phase, "epoch": epoch + 1, **{k: float(v[i]) for k, v in history.history.items()},
                         "learning_rate": rate_at(epoch), "seconds": round(timer.seconds[i], 3), **stage(epoch)})
    for row in rows:
        row["kept"] = keep.best_epoch == row["epoch"] - 1
    return rows


class _EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)
