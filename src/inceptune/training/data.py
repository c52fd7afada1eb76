"""Cached features as Keras training data, read batch by batch from the cache."""

from __future__ import annotations

import math

import keras
import numpy as np

from inceptune.data.scan import ImageRecord
from inceptune.features.cache import FeatureCache
from inceptune.features.extract import read_features


IN_MEMORY_LIMIT = 1 << 30  # bytes of features below which a split is loaded whole


class CachedFeatures(keras.utils.PyDataset):
    """(features, labels) batches loaded lazily from the feature cache; memory stays flat."""

    def __init__(self, records: list[ImageRecord], labels: np.ndarray, cache: FeatureCache, kind: str,
                 batch_size: int, shuffle: bool = False, seed: int = 0):
        super().__init__()
        self.records, self.labels, self.cache, self.kind = records, labels, cache, kind
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self._order = np.arange(len(records))
        self.set_epoch(0)

    def __len__(self) -> int:
        return math.ceil(len(self.records) / self.batch_size)

    def __getitem__(self, index: int):
        rows = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        x = read_features([self.records[i] for i in rows], self.cache, self.kind)
        return x, self.labels[rows]

    def set_epoch(self, epoch: int) -> None:
        """The order of epoch `epoch` depends on (seed, epoch) alone, so a resumed run sees the same batches."""
        self.epoch = epoch
        if self.shuffle:
            self._order = np.random.default_rng([self.seed, epoch]).permutation(len(self.records))

    def on_epoch_end(self):
        self.set_epoch(self.epoch + 1)

    def arrays_if_small(self) -> "CachedFeatures | tuple[np.ndarray, np.ndarray]":
        """(x, y) arrays when the whole split fits comfortably in memory, else self.

        Keras fits in-memory arrays with far less per-batch overhead, which
        matters when an epoch on cached features takes milliseconds.
        """
        first = self.cache.get(self.kind, self.records[0].sha256)
        if first is None or first.nbytes * len(self.records) > IN_MEMORY_LIMIT:
            return self
        return read_features(self.records, self.cache, self.kind), self.labels
