"""`--distribute multi-worker`: one process per machine, the cluster in TF_CONFIG, the phases' fits in sync.

Every worker runs the whole of `train`: the scan, extraction into its cache,
the search, and each phase's fit. Only the fits are distributed: each phase
model gets a replica whose variables are mirrored by TensorFlow's
MultiWorkerMirroredStrategy, so every step's gradients are averaged over the
workers and every worker holds the same weights after it. Each global batch
(the recipe's --batch-size, as in a single process) is split between the
workers, and each worker reads only its rows of it (`sharded`): its shard of
the cached features, activations or images. Validation is split and averaged
by TensorFlow (each worker reads the whole, smaller, validation split): the
losses a worker logs are the cluster's. Everything else runs on each worker's own
copy, as in one process, so the workers must agree on the recipe: `agree`
checks that they chose the same one.

The cluster is no ambient state: `joined` makes it, and the run's Strategy
(engines/devices.py) carries it down to the functions that need it.

Worker 0 (or the one TF_CONFIG names `chief`) writes the run folder; every
other worker checkpoints into a folder of its own beside it (`.NAME.worker-I`)
and removes it when the run finishes. A worker that dies makes the others'
next collective fail within seconds (TensorFlow's heartbeats); they stop with
one sentence, and `--resume` on every worker continues from the last epoch
they all finished.

Keras 3.15 cannot fit under this strategy as it ships (keras-team/keras#20585):
its symbolic build reduces a batch of the distributed dataset, and its logs
are reduced with `axis=0`, which fails on scalars. `Cluster.replica` builds
each replica from a local batch instead, and `_reduce_logs_per_element` averages logs
over the replicas element by element.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import zlib
from pathlib import Path

import keras
import numpy as np

from inceptune import console
from inceptune.errors import UserError, WorkerLost

def cluster_spec() -> tuple[int, int, bool]:
    """(this worker's index, number of workers, whether it is the chief) from TF_CONFIG; one sentence if unusable."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise UserError("--distribute multi-worker needs TF_CONFIG: a JSON cluster of every worker's host:port and "
                        "this worker's task (docs/distributed.md).")
    try:
        config = json.loads(raw)
        cluster, task = config["cluster"], config["task"]
        order = [*cluster.get("chief", []), *cluster.get("worker", [])]
        index = (0 if task["type"] == "chief" else len(cluster.get("chief", [])) + int(task["index"]))
        if task["type"] not in ("chief", "worker") or not 0 <= index < len(order):
            raise ValueError(task)
    except (ValueError, KeyError, TypeError):
        raise UserError("TF_CONFIG is not a cluster with this worker's task in it: it needs {\"cluster\": "
                        "{\"worker\": [\"host:port\", ...]}, \"task\": {\"type\": \"worker\", \"index\": I}}.") from None
    return index, len(order), index == 0


@contextlib.contextmanager
def joined():
    """Join the cluster TF_CONFIG describes, for the duration of a `train`: yields the `Cluster`, which
    `training_devices` puts in the run's Strategy (engines/devices.py)."""
    index, count, chief = cluster_spec()
    import tensorflow as tf

    _reduce_logs_per_element()
    cluster = Cluster(tf.distribute.MultiWorkerMirroredStrategy(), index, count, chief)
    console.info(f"Worker {index} of {count}" + (" (chief: it writes the run folder)." if chief else "."))
    yield cluster


class Cluster:
    def __init__(self, strategy, index: int, count: int, chief: bool):
        self.strategy, self.index, self.count, self.chief = strategy, index, count, chief
        self.rows_read = [0, 0]  # of the last `sharded` input: rows read here, rows of the global batches

    def scope(self):
        return self.strategy.scope()

    def replica(self, model: keras.Model) -> keras.Model:
        """A copy of `model` with mirrored variables and the same weights and trainable layers; `compiled`
        builds it once compiled."""
        from inceptune.models.classifier import refresh_normalization

        with self.scope():
            twin = keras.models.clone_model(model)
            twin.set_weights(model.get_weights())
        refresh_normalization(twin)
        twin._maybe_symbolic_build = lambda iterator=None, data_batch=None: None  # see `compiled`
        return twin

    def compiled(self, twin: keras.Model, batch: tuple) -> None:
        """Build the compiled replica's metrics and optimizer under the strategy on one local `batch` (x, y),
        so Keras never reduces a distributed batch to build it."""
        with self.scope():
            twin._symbolic_build(data_batch=tuple(np.asarray(a) for a in batch))

    def sharded(self, batches, epochs: int, class_weight: dict[int, float] | None = None):
        """`batches` (a training PyDataset) as the cluster's input for a fit of `epochs` epochs: replica r of R
        reads only rows r, r + R, ... of each global batch, so every worker reads its shard of the cached
        features or images and no more. Fit it with `steps_per_epoch=steps(batches)`: the input runs through
        the epochs in turn, each in the order Keras would give the PyDataset itself (its fit advances a
        PyDataset's epoch once before the first, then after each), and ends after the last. Class weights
        become sample weights, as Keras' own map makes them. A last batch with fewer rows than replicas is left
        out of its epoch (a different one each epoch, as the order is shuffled)."""
        import tensorflow as tf

        replicas, steps, first = self.strategy.num_replicas_in_sync, self.steps(batches), batches.epoch + 1
        self.rows_read = [0, 0]  # rows this worker read, rows of the global batches it stepped through
        x, y = (np.asarray(a) for a in batches.part(0, 0, replicas))
        signature = [tf.TensorSpec((None, *x.shape[1:]), tf.as_dtype(x.dtype)),
                     tf.TensorSpec((None, *y.shape[1:]), tf.as_dtype(y.dtype))]
        if class_weight:
            signature.append(tf.TensorSpec((None,), tf.float32))

        def dataset(context):
            local = replicas // context.num_input_pipelines  # this worker's replicas (one per GPU, or one)
            mine = range(context.input_pipeline_id * local, (context.input_pipeline_id + 1) * local)

            def shares():
                # Keras keeps one iterator over all epochs when it is given steps per epoch: the epochs follow on
                # here, not at a callback (a read-ahead would start an epoch before the callback ran).
                for epoch in range(first, first + epochs):
                    batches.set_epoch(epoch)
                    for index in range(steps):
                        self.rows_read[1] += len(batches.rows(index))
                        for replica in mine:
                            x, y = batches.part(index, replica, replicas)
                            self.rows_read[0] += len(y)
                            yield (x, y, _sample_weights(y, class_weight)) if class_weight else (x, y)

            return tf.data.Dataset.from_generator(shares, output_signature=tuple(signature)).prefetch(2)

        return self.strategy.distribute_datasets_from_function(dataset)

    def steps(self, batches) -> int:
        """Global steps per epoch of `sharded(batches)`: a last batch too small to split is left out."""
        last = len(batches.rows(len(batches) - 1)) if len(batches) else 0
        return len(batches) - (0 < last < self.strategy.num_replicas_in_sync)

    @contextlib.contextmanager
    def running(self, what: str):
        """Run collective work (a fit, an evaluation) under the strategy; a worker lost on the way is one sentence."""
        import tensorflow as tf

        lost = None
        try:
            with self.scope():
                yield
        except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
                tf.errors.AbortedError) as exc:
            lost = _which(exc)
        if lost is not None:
            # Raised outside the `except`, so the failed fit's frames (and Keras' data threads) are freed now,
            # not torn down with the interpreter, which prints their tracebacks.
            gc.collect()
            raise WorkerLost(f"Another worker of the cluster stopped during {what} ({lost}); start every worker "
                             "again with --resume to continue from the last finished epoch.")

    def gather(self, value: int) -> list[int]:
        """Every worker's `value`, in worker order (a collective: every worker must call it)."""
        import tensorflow as tf

        @tf.function
        def gathered(local):
            return self.strategy.gather(self.strategy.run(lambda: local), axis=0)

        with self.running("a check between workers"):
            return [int(v) for v in gathered(tf.constant([value], tf.int64)).numpy()]

    def agree(self, what: str, value) -> None:
        """Check that every worker holds the same `value` (JSON-able); one sentence naming `what` if not."""
        digest = zlib.crc32(json.dumps(value, sort_keys=True, default=str).encode())
        values = self.gather(digest)
        if len(set(values)) > 1:
            others = [i for i, v in enumerate(values) if v != values[self.index]]
            raise UserError(f"The workers differ in {what} (worker {self.index} and worker {others[0]}); give every "
                            "worker the same data, settings and cache, or start them again without --resume.")

    def scratch(self, out: Path) -> Path:
        """Where a worker other than the chief keeps its checkpoint: beside the run folder, its own."""
        out = Path(out)
        return out.parent / f".{out.name}.worker-{self.index}"


def _sample_weights(y: np.ndarray, class_weight: dict[int, float]) -> np.ndarray:
    """Each row's weight from its class: the arg-max of a one-hot row, else the label itself (as Keras does)."""
    classes = np.argmax(y, axis=1) if y.ndim == 2 and y.shape[1] > 1 else np.rint(y.reshape(-1)).astype(int)
    return np.array([class_weight.get(int(c), 1.0) for c in classes], np.float32)


def _which(exc: Exception) -> str:
    """Which worker TensorFlow found gone, from its message ("... unhealthy ...: /job:worker/replica:0/task:1")."""
    text = getattr(exc, "message", None) or str(exc)
    found = re.search(r"/job:(\w+)/replica:\d+/task:(\d+)\s*$", text.split("unhealthy", 1)[-1], re.MULTILINE)
    if "unhealthy" in text and found:
        return f"{found.group(1)} {found.group(2)} stopped sending heartbeats"
    return type(exc).__name__


def _reduce_logs_per_element() -> None:
    """Keras reduces a multi-worker step's logs with `strategy.reduce(MEAN, v, axis=0)`, which fails on the scalars
    that losses and metrics are; average them over the replicas element by element instead (once per process)."""
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer.reduce_per_replica, "inceptune", False):
        return
    original = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return keras.tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    reduce_per_replica.inceptune = True
    trainer.reduce_per_replica = reduce_per_replica
