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

XLA: Keras compiles the training step with XLA where it supports the model
(`jit_compile="auto"`); nothing to set.
"""

from __future__ import annotations

import contextlib

import keras

from inceptune.engines.cluster import active, joined


def gpus() -> list:
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def precision_policy(precision: str) -> str:
    if precision == "float32":
        return "float32"
    return "mixed_float16" if gpus() else "mixed_bfloat16"


@contextlib.contextmanager
def training_devices(precision: str, distribute: str):
    """Set the dtype policy and enter the distribution strategy for the duration of a run."""
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
        with scope:
            strategy = tf.distribute.get_strategy() if tf.distribute.has_strategy() else None
            cluster = active()
            yield {"policy": policy,
                   "replicas": cluster.count if cluster else strategy.num_replicas_in_sync if strategy else 1,
                   "strategy": ("MultiWorkerMirroredStrategy" if cluster
                                else type(strategy).__name__ if strategy else None)}
    finally:
        keras.mixed_precision.set_global_policy(previous)
