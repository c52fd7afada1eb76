"""A model's answers for data held in memory or read batch by batch, by calling the model directly.

`keras.Model.predict` traces a graph function for every new model (about half a second each, several times in
each `train`), which is worth it for many large batches and pure overhead for the small heads and held-out
splits that training scores: a direct call runs the same layers, in inference mode, without tracing.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

BATCH = 256  # rows per call for data given as one array


def answers(model: keras.Model, data: np.ndarray | Sequence) -> np.ndarray:
    """`model`'s output for `data`: an array (run BATCH rows at a time), or a sequence of batches, each
    inputs or (inputs, targets) (a keras PyDataset, in its order)."""
    if isinstance(data, np.ndarray):
        batches = [data[i:i + BATCH] for i in range(0, len(data), BATCH)]
    else:
        batches = [batch[0] if isinstance(batch, tuple) else batch for batch in (data[i] for i in range(len(data)))]
    if not batches:
        return np.asarray(model.predict(data, verbose=0))
    return np.concatenate([keras.ops.convert_to_numpy(model(batch, training=False)) for batch in batches])
