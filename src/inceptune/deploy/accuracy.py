"""What a quantized export costs in accuracy: FP32 and quantized answers scored on the run's held-out photos.

The held-out photos are the run's test split, else its val split (which a
refit has seen: the figure then measures only what quantization changes).
The score is accuracy, or macro F1 at the run's thresholds for a multi-label
run; a quantized export is kept only when it loses at most `max_drop` of it
(absolute: 0.005 is half a percentage point).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import f1_score

from inceptune.data.dataset import read_manifest
from inceptune.data.images import load_image
from inceptune.data.multilabel import SEPARATOR
from inceptune.data.pipeline import resize_image
from inceptune.errors import ImageError
from inceptune.models.classifier import class_probabilities
from inceptune.models.ood import split_outputs
from inceptune.runs import RunFolder

BATCH = 16


@dataclass
class HeldOut:
    split: str
    pixels: np.ndarray  # (N, S, S, 3) float32, resized as predict does
    truth: np.ndarray  # (N,) class indices, or (N, labels) 0/1 for a multi-label run
    multilabel: bool
    thresholds: np.ndarray | float = 0.5

    @property
    def metric(self) -> str:
        return "macro_f1" if self.multilabel else "accuracy"

    def score(self, outputs) -> float:
        """The metric of a model's raw outputs on these photos."""
        probs = class_probabilities(split_outputs(outputs)[0], self.multilabel)
        if self.multilabel:
            return float(f1_score(self.truth, probs >= self.thresholds, average="macro", zero_division=0))
        return float(np.mean(probs.argmax(axis=1) == self.truth))

    def batches(self) -> Iterable[np.ndarray]:
        for i in range(0, len(self.pixels), BATCH):
            yield self.pixels[i:i + BATCH]

    def score_with(self, infer: Callable[[np.ndarray], object]) -> float:
        """The metric of `infer` (pixels -> raw outputs), run a batch at a time."""
        parts = [split_outputs(infer(batch))[0] for batch in self.batches()]
        return self.score(np.concatenate(parts))


def held_out(folder: RunFolder) -> HeldOut | None:
    """The run's test photos (else its val photos) that are on this machine, with their labels; None when none."""
    records = read_manifest(folder.file("manifest.csv")) if folder.file("manifest.csv").is_file() else []
    classes = folder.classes
    multilabel = folder.task == "multilabel"
    for split in ("test", "val"):
        pixels, truth = [], []
        for r in (r for r in records if r.split == split):
            try:
                pixels.append(resize_image(load_image(r.path), folder.image_size))
            except ImageError:
                continue
            if multilabel:
                names = set(filter(None, r.label.split(SEPARATOR)))
                truth.append([int(c in names) for c in classes])
            else:
                truth.append(classes.index(r.label))
        if pixels:
            thresholds = np.asarray(folder.thresholds) if multilabel and folder.thresholds else 0.5
            return HeldOut(split, np.stack(pixels).astype("float32"), np.asarray(truth), multilabel, thresholds)
    return None


def accuracy_check(held: HeldOut, fp32: float, quantized: float, max_drop: float, method: str,
                   calibration_images: int) -> dict:
    """What export.json records of a quantized export's accuracy check."""
    drop = fp32 - quantized
    return {"split": held.split, "images": len(held.pixels), "metric": held.metric, "fp32": fp32,
            "quantized": quantized, "drop": drop, "max_drop": max_drop, "passed": bool(drop <= max_drop + 1e-12),
            "method": method, "calibration_images": calibration_images}
