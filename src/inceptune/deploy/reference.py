"""What every export of a run is compared with, worked out once: the FP32 Keras model, the run's own photos
decoded and resized as `predict` does them, and the model's answers on them.

`train --export auto` checks several candidates (FP32, bf16, int8) against the same model on the same photos;
one Reference loads model.keras once, decodes each set of photos once, and runs Keras on each once, where
each export used to do all of it again.

    parity       up to PARITY_IMAGES photos of val then train (never test): an FP32 export within 1e-4
    held-out     the val split with its labels (deploy/accuracy.py): a bf16 or int8 export on every output
    calibration  photos of the train split for int8 calibration (and fp16/LiteRT: any split)
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import keras
import numpy as np

from inceptune import console
from inceptune.data.dataset import read_manifest
from inceptune.data.images import load_image
from inceptune.data.pipeline import resize_image
from inceptune.deploy.accuracy import HeldOut, held_out
from inceptune.errors import ImageError
from inceptune.inference.runtimes import load_runtime
from inceptune.models.weights import file_fingerprint
from inceptune.runs import RunFolder

PARITY_IMAGES = 16
PARITY_SPLITS = ("val", "train")  # never the test split: it measures the run and chooses nothing


class Reference:
    """The FP32 Keras model of one run and its answers on the run's photos, each computed on first use."""

    def __init__(self, folder: RunFolder):
        self.folder = folder
        self._images: dict[tuple, np.ndarray] = {}
        self._export_outputs: dict[tuple, list[np.ndarray]] = {}

    @classmethod
    def open(cls, run: str | Path) -> Reference:
        return cls(RunFolder.open(run))

    @cached_property
    def model(self) -> keras.Model:
        return self.folder.load_model()

    @cached_property
    def digest(self) -> str:
        return file_fingerprint(self.folder.model_path)

    @cached_property
    def held(self) -> HeldOut | None:
        return held_out(self.folder)

    @cached_property
    def keras_held(self) -> list[np.ndarray]:
        """Keras' raw outputs on the held-out photos."""
        return self.held.outputs_with(lambda x: self.model.predict(x, verbose=0))

    @cached_property
    def parity(self) -> np.ndarray:
        return self.images(PARITY_SPLITS, PARITY_IMAGES)

    @cached_property
    def keras_parity(self):
        """Keras' raw outputs on the parity photos."""
        return self.model.predict(self.parity, verbose=0)

    def export_held(self, fmt: str, artefact: Path, quantize: str | None = None) -> list[np.ndarray]:
        """An export's raw outputs on the held-out photos."""
        key = (fmt, str(artefact), quantize, Path(artefact).stat().st_mtime_ns)
        if key not in self._export_outputs:
            self._export_outputs[key] = self.held.outputs_with(load_runtime(fmt, artefact, quantize))
        return self._export_outputs[key]

    def images(self, splits: tuple[str, ...], count: int) -> np.ndarray:
        """Up to `count` real photos of the run, from `splits` in that order, resized as predict does."""
        key = (splits, count)
        if key not in self._images:
            self._images[key] = run_images(self.folder, splits, count)
        return self._images[key]


def run_files(folder: RunFolder, splits: tuple[str, ...], count: int) -> list[tuple[str, np.ndarray]]:
    """Up to `count` (path, decoded pixels) of the run's images, from `splits` in that order."""
    records = read_manifest(folder.file("manifest.csv")) if folder.file("manifest.csv").is_file() else []
    records = sorted((r for r in records if r.split in splits), key=lambda r: splits.index(r.split))
    found = []
    for r in records:
        try:
            found.append((r.path, load_image(r.path)))
        except ImageError:
            continue
        if len(found) == count:
            break
    return found


def run_images(folder: RunFolder, splits: tuple[str, ...], count: int) -> np.ndarray:
    """Up to `count` real images of the run, from `splits` in that order, resized as predict does."""
    images = [resize_image(pixels, folder.image_size) for _, pixels in run_files(folder, splits, count)]
    if not images:
        console.warn("the run's images are not on this machine; checking parity on generated images")
        rng = np.random.default_rng(0)
        images = list(rng.uniform(0, 255, (count, folder.image_size, folder.image_size, 3)).astype("float32"))
    return np.stack(images).astype("float32")
