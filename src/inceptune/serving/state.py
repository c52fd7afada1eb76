"""Serving: what every route of `serve` shares (the loaded model, its name, the batcher, the limits, the
counters), and the steps the Open Inference Protocol and TF Serving routes share: encoded files decoded at the
model's size, a batch answered as the protocols' outputs, and the check of the model name and version."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool

from inceptune import hooks
from inceptune.data.images import decode_image
from inceptune.deploy import protocols
from inceptune.errors import ImageError
from inceptune.inference.model import TrainedModel
from inceptune.serving.batching import MicroBatcher
from inceptune.serving.metrics import ServerMetrics
from inceptune.vocabulary.limits import DECODE_SLOTS

MODEL_VERSION = "1"  # the protocols' model version: a run folder holds one model


@dataclass
class Serving:
    """The state one app's routes share; `name` is the model's name in the v1 and v2 routes."""

    model: TrainedModel
    name: str
    batcher: MicroBatcher
    metrics: ServerMetrics
    top: int
    max_files: int
    max_pixels: int
    requests: int = 0
    started: float = field(default_factory=time.time)
    decoding: int = 0  # images being decoded and resized now
    _decode_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(DECODE_SLOTS))

    @property
    def classes(self) -> list[str]:
        return self.model.classes

    @property
    def scored(self) -> bool:
        """Whether the model answers an OOD score (its last output column)."""
        return self.model.ood_threshold is not None

    @property
    def has_sets(self) -> bool:
        """Whether the model answers prediction sets (a single-label run trained with --coverage)."""
        return self.model.sets is not None

    def decode(self, data: bytes) -> np.ndarray:
        return decode_image(data, max_pixels=self.max_pixels)

    async def prepared(self, data: bytes, prepare: Callable[[np.ndarray], object]):
        """`prepare` of an encoded file once decoded, in a worker thread; at most DECODE_SLOTS at once across every
        request, so many large photos at once queue here instead of each holding its full-size pixels."""
        async with self._decode_slots:
            self.decoding += 1
            hooks.reached("image_decoding", active=self.decoding)
            try:
                return await run_in_threadpool(lambda: prepare(self.decode(data)))
            finally:
                self.decoding -= 1

    def at_model_size(self, image: np.ndarray) -> np.ndarray:
        """Resized at once: a request holds its images at the model's size, not as decoded (up to --max-pixels)."""
        return self.model.batch([image])[0]

    async def decoded(self, blobs: list[bytes]) -> np.ndarray:
        """Encoded image files -> one batch at the model's size; a file that cannot be used is a 4xx."""
        if len(blobs) > self.max_files:
            raise HTTPException(413, f"At most {self.max_files} images per request.")
        images = []
        for i, data in enumerate(blobs):
            try:
                images.append(await self.prepared(data, self.at_model_size))
            except ImageError as exc:
                raise unusable(f"Image {i}", exc) from None
        return np.stack(images)

    async def answered(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """The protocols' outputs of a batch of pixels at the model's size."""
        self.requests += 1
        rows = await self.batcher.submit(pixels)
        described = [self.model.describe(row, 1) for row in rows]
        labels = ["|".join(d["labels"]) if "labels" in d else d["top"][0]["label"] for d in described]
        outputs = {protocols.PROBABILITIES: np.asarray(rows[:, :-1], np.float32),
                   protocols.LABEL: np.array([label.encode() for label in labels], dtype=object)}
        if self.scored:
            outputs[protocols.UNKNOWN] = np.array([bool(d.get("unknown")) for d in described])
            outputs[protocols.OOD_SCORE] = np.asarray(rows[:, -1], np.float32)
        if self.has_sets:
            outputs[protocols.SET] = np.array(["|".join(d["set"]).encode() for d in described], dtype=object)
        return outputs

    def known(self, model_name: str, version: str = MODEL_VERSION) -> None:
        """404 unless a request names this server's model and version."""
        if model_name != self.name or version != MODEL_VERSION:
            raise HTTPException(404, f"Unknown model '{model_name}' version '{version}'; this server serves "
                                     f"'{self.name}' version {MODEL_VERSION}.")


def unusable(what: str, exc: ImageError) -> HTTPException:
    """An image that cannot be used: 413 when it has too many pixels, else 400."""
    return HTTPException(413 if exc.reason.startswith("too large") else 400, f"{what} cannot be used: {exc.reason}.")


def package_version() -> str:
    """inceptune's installed version (the app's and the Open Inference Protocol's server version)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("inceptune")
    except PackageNotFoundError:
        return "dev"
