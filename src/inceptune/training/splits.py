"""A dataset's splits as training inputs: labels, cached-feature batches, image batches, and scores."""

from __future__ import annotations

import keras
import numpy as np
from sklearn.metrics import accuracy_score, log_loss

from inceptune.data.dataset import Dataset
from inceptune.features.cache import FeatureCache
from inceptune.models.classifier import Classifier, class_probabilities
from inceptune.models.infer import answers
from inceptune.settings import Settings
from inceptune.training.data import CachedFeatures, ImageBatches
from inceptune.training.extraction import Views


class SplitData:
    """Labels and cached-feature datasets per split; the training split includes its augmented views."""

    def __init__(self, dataset: Dataset, classifier: Classifier, cache: FeatureCache, settings: Settings,
                 views: Views | None = None):
        self.dataset, self.classifier, self.cache, self.settings = dataset, classifier, cache, settings
        self.views = views

    def labels(self, split: str) -> np.ndarray:
        if self.classifier.multilabel:  # multi-hot rows
            classes = self.dataset.classes
            return np.array([[float(c in self.dataset.labels_of(r)) for c in classes]
                             for r in self.dataset.split(split)], dtype="float32").reshape(-1, len(classes))
        y = np.array([self.dataset.label_index(r) for r in self.dataset.split(split)])
        if self.classifier.binary:
            return y.astype("float32").reshape(-1, 1)
        return np.eye(len(self.dataset.classes), dtype="float32")[y] if self.classifier.one_hot else y.astype("int32")

    def targets(self, split: str) -> np.ndarray:
        """The split's answers as metrics take them: class indices, or multi-hot rows when multi-label."""
        if self.classifier.multilabel:
            return self.labels(split).astype(int)
        return np.array([self.dataset.label_index(r) for r in self.dataset.split(split)], dtype=int)

    def data(self, split: str, kind: str, views: bool = True) -> CachedFeatures | None:
        """The split's cached `kind` features; the training split includes its augmented views if `views`."""
        records = self.dataset.split(split)
        if not records:
            return None
        labels = self.labels(split)
        if split == "train" and views and self.views is not None:
            # the images whose views were extracted (a refit's train + val holds val images without views)
            covered = [i for i, r in enumerate(records) if self.views.covers(r)]
            extra = self.views.of([records[i] for i in covered])
            if extra:
                records = records + [r for view in extra for r in view]
                labels = np.concatenate([labels] + [labels[covered]] * len(extra))
        r = self.settings.recipe
        return CachedFeatures(records, labels, self.cache, kind, r.batch_size, shuffle=split == "train",
                              seed=self.settings.data.seed)

    def images(self, split: str) -> ImageBatches:
        """The split's images themselves, decoded batch by batch (phase 2 with on-the-fly augmentation)."""
        s = self.settings
        return ImageBatches(self.dataset.split(split), self.labels(split), s.recipe.image_size, s.recipe.batch_size,
                            shuffle=split == "train", seed=s.data.seed, max_pixels=s.data.max_pixels)

    def probabilities(self, model: keras.Model, split: str, kind: str) -> np.ndarray:
        """(N, classes) probabilities of the split's images, in `dataset.split(split)` order."""
        return class_probabilities(answers(model, self.data(split, kind)), self.classifier.multilabel)

    def scores(self, split: str, probs: np.ndarray, thresholds: np.ndarray | None = None) -> dict:
        """Accuracy and loss of `probs` on the split (subset accuracy, F1 and Hamming loss when multi-label,
        each label decided at its threshold: 0.5 unless `thresholds`)."""
        if self.classifier.multilabel:
            from inceptune.evaluation.multilabel import multilabel_metrics
            from inceptune.vocabulary.limits import THRESHOLD

            m = multilabel_metrics(self.targets(split), probs, self.dataset.classes,
                                   THRESHOLD if thresholds is None else thresholds)
            return {"images": m["images"], "accuracy": m["subset_accuracy"], "loss": m["loss"],
                    "f1_macro": m["f1_macro"], "hamming_loss": m["hamming_loss"]}
        y = self.targets(split)
        return {"images": int(len(y)), "accuracy": float(accuracy_score(y, probs.argmax(axis=1))),
                "loss": float(log_loss(y, probs, labels=list(range(len(self.dataset.classes)))))}
