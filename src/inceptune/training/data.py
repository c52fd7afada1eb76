"""Training data as Keras PyDatasets: cached features (read batch by batch from the cache), or images
(decoded and resized batch by batch, for phase 2 with on-the-fly augmentation)."""

from __future__ import annotations

import math

import keras
import numpy as np

from inceptune.data.pipeline import image_batches
from inceptune.data.scan import ImageRecord
from inceptune.errors import UserError
from inceptune.features.cache import FeatureCache
from inceptune.features.extract import read_features
from inceptune.vocabulary.limits import DEFAULT_MAX_PIXELS


IN_MEMORY_LIMIT = 1 << 30  # bytes of features below which a split is loaded whole
PREFETCH = 2  # threads that read the next batches from the cache while the model trains on this one


class _Batches(keras.utils.PyDataset):
    """Batches of `records` in an order fixed by (seed, epoch) when shuffling."""

    def __init__(self, records: list[ImageRecord], labels: np.ndarray, batch_size: int, shuffle: bool, seed: int,
                 **kwargs):
        super().__init__(**kwargs)
        self.records, self.labels, self.batch_size, self.shuffle, self.seed = records, labels, batch_size, shuffle, seed
        self._order = np.arange(len(records))
        self.set_epoch(0)

    def __len__(self) -> int:
        return math.ceil(len(self.records) / self.batch_size)

    def rows(self, index: int) -> np.ndarray:
        return self._order[index * self.batch_size:(index + 1) * self.batch_size]

    def __getitem__(self, index: int):
        return self.load(self.rows(index))

    def part(self, index: int, part: int, parts: int):
        """Rows part, part + parts, ... of batch `index`: one replica's share of a global batch on a cluster,
        read alone (engines/cluster.py)."""
        return self.load(self.rows(index)[part::parts])

    def load(self, rows: np.ndarray):
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """The order of epoch `epoch` depends on (seed, epoch) alone, so a resumed run sees the same batches."""
        self.epoch = epoch
        if self.shuffle:
            self._order = np.random.default_rng([self.seed, epoch]).permutation(len(self.records))

    def on_epoch_end(self):
        self.set_epoch(self.epoch + 1)


class CachedFeatures(_Batches):
    """(features, labels) batches from the feature cache: read lazily (memory stays flat), or from memory
    once `load_if_small` has found that the whole split fits comfortably."""

    def __init__(self, records: list[ImageRecord], labels: np.ndarray, cache: FeatureCache, kind: str,
                 batch_size: int, shuffle: bool = False, seed: int = 0):
        # read lazily, batches come from PREFETCH threads a few batches ahead (the cache reads with pread)
        super().__init__(records, labels, batch_size, shuffle, seed, workers=PREFETCH, max_queue_size=8)
        self.cache, self.kind = cache, kind
        self._features: np.ndarray | None = None

    def load(self, rows: np.ndarray):
        if self._features is not None:
            return self._features[rows], self.labels[rows]
        return read_features([self.records[i] for i in rows], self.cache, self.kind), self.labels[rows]

    def load_if_small(self) -> "CachedFeatures":
        """Keep the whole split in memory when it fits under IN_MEMORY_LIMIT: an epoch on cached features
        can take milliseconds, and reading files per batch would dominate it."""
        if self._features is None:
            first = read_features(self.records[:1], self.cache, self.kind)
            if first.nbytes * len(self.records) <= IN_MEMORY_LIMIT:
                self._features = read_features(self.records, self.cache, self.kind)
                self.workers = 1  # slicing an array needs no thread
        return self

    def features(self) -> np.ndarray:
        """Every record's features, in order."""
        return self._features if self._features is not None else read_features(self.records, self.cache, self.kind)


class ImageBatches(_Batches):
    """(images, labels) batches decoded from the files: (n, S, S, 3) float32 pixels in 0..255.

    Each batch is decoded in parallel by the same pipeline as feature extraction
    (data/pipeline.py), and Keras prepares the next batches on worker threads
    while the model trains on this one.
    """

    def __init__(self, records: list[ImageRecord], labels: np.ndarray, image_size: int, batch_size: int,
                 shuffle: bool = False, seed: int = 0, max_pixels: int = DEFAULT_MAX_PIXELS):
        super().__init__(records, labels, batch_size, shuffle, seed, workers=2)
        self.image_size, self.max_pixels = image_size, max_pixels

    def load(self, rows: np.ndarray):
        paths = [self.records[i].path for i in rows]
        batch = next(image_batches(paths, self.image_size, len(paths), self.max_pixels))
        if batch.failures:
            position, reason = batch.failures[0]
            raise UserError(f"{paths[position]} could not be read during fine-tuning ({reason}); it changed after "
                            "the scan.")
        return batch.images, self.labels[rows]
