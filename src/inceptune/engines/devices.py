"""Where training runs: precision (`--precision`) and replication over devices (`--distribute`).

    --precision float32   everything in FP32 (the default)
    --precision mixed     float16 compute on GPUs (bfloat16 on CPUs), FP32 weights and outputs;
                          Keras scales the loss for float16 itself
    --distribute auto     tf.distribute.MirroredStrategy over all local GPUs when there are two or more
    --distribute mirrored MirroredStrategy over whatever devices there are (one replica on a CPU)
    --distribute multi-worker  MultiWorkerMirroredStrategy for each phase's fit: one process per machine,
                          the cluster in the TF_CONFIG environment variable (engines/cluster.py,
                          docs/distributed.md)
    --distribute none     the default device

`training_devices` sets both for the duration of a run and yields its `Strategy`: the one object that
says where the run trains (precision, replicas, the multi-worker cluster), which the workflow passes down
as an argument to the extraction, the recipe's choice and each phase's fit.

XLA: Keras compiles the training step with XLA where it supports the model
(`jit_compile="auto"`); nothing to set.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import keras

from inceptune.engines.cluster import Cluster, joined

T = TypeVar("T")


def gpus() -> list:
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def precision_policy(precision: str) -> str:
    if precision == "float32":
        return "float32"
    return "mixed_float16" if gpus() else "mixed_bfloat16"


@dataclass(frozen=True)
class Strategy:
    """Where a run trains, passed down from the workflow that made it (as Lightning passes its Strategy): the
    dtype policy, the replicas and, on `--distribute multi-worker`, the cluster this process is a worker of.

    In one process (`Strategy()`, the default of every function that takes one) there is no cluster: this
    process is worker 0 of 1, the chief, its share is every image, and there is nothing to agree on.
    """

    policy: str = "float32"
    replicas: int = 1
    name: str | None = None  # the tf.distribute strategy's class name, None without one
    cluster: Cluster | None = None  # the multi-worker cluster this process joined

    @property
    def index(self) -> int:
        """This worker's index in the cluster (0 in one process)."""
        return self.cluster.index if self.cluster else 0

    @property
    def count(self) -> int:
        """How many workers the cluster has (1 in one process)."""
        return self.cluster.count if self.cluster else 1

    @property
    def chief(self) -> bool:
        """Whether this process writes the run folder: the cluster's chief, or the one process."""
        return self.cluster.chief if self.cluster else True

    def share(self, items: Sequence[T]) -> Sequence[T]:
        """This worker's share of `items`: every N-th from its index (all of them in one process)."""
        return items[self.index::self.count]

    def barrier(self, value: int = 0) -> None:
        """Wait until every worker reaches this point (a collective; nothing in one process)."""
        if self.cluster is not None:
            self.cluster.gather(value)

    def agree(self, what: str, value) -> None:
        """Check that every worker holds the same `value`; one sentence naming `what` if not (one process: no check)."""
        if self.cluster is not None:
            self.cluster.agree(what, value)

    def describe(self) -> str | None:
        """The "Devices: ..." line a run starts with, or None when it trains in FP32 on one replica."""
        if self.policy == "float32" and self.replicas <= 1:
            return None
        return (f"Devices: {self.policy} precision, {self.replicas} replica(s)"
                + (f" ({self.name})" if self.name else "") + ".")


@contextlib.contextmanager
def training_devices(precision: str, distribute: str) -> Iterator[Strategy]:
    """Set the dtype policy and enter the distribution strategy for the duration of a run; yields the run's
    `Strategy`, which the workflow passes down to whatever needs it."""
    import tensorflow as tf

    policy = precision_policy(precision)
    if distribute == "multi-worker":  # the phases' fits join the cluster, nothing else (engines/cluster.py)
        scope = joined()
    elif distribute == "mirrored" or (distribute == "auto" and len(gpus()) >= 2):
        scope = tf.distribute.MirroredStrategy().scope()
    else:
        scope = contextlib.nullcontext()
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(policy)
    try:
        with scope as entered:
            cluster = entered if isinstance(entered, Cluster) else None
            mirrored = tf.distribute.get_strategy() if tf.distribute.has_strategy() else None
            yield Strategy(policy,
                           cluster.count if cluster else mirrored.num_replicas_in_sync if mirrored else 1,
                           "MultiWorkerMirroredStrategy" if cluster else type(mirrored).__name__ if mirrored else None,
                           cluster)
    finally:
        keras.mixed_precision.set_global_policy(previous)
