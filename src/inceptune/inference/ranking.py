"""Images in batches through a model, and each image's answer ranked: shared by every predictor."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from inceptune import console
from inceptune.data.pipeline import image_batches


def rank_classes(classes: list[str], probs: np.ndarray, top: int) -> dict:
    """One image's result: the `top` classes by probability, and every class's probability."""
    order = np.argsort(-probs, kind="stable")[: max(1, top)]
    return {"top": [{"label": classes[i], "probability": float(probs[i])} for i in order],
            "probabilities": {c: float(p) for c, p in zip(classes, probs)}}


def answer(classes: list[str], probs: np.ndarray, top: int, thresholds: list[float] | None,
           ood: tuple[float, float | None] | None = None, in_set: np.ndarray | None = None) -> dict:
    """One image's answer, the same wherever it is asked: the ranked `top` and every class's probability;
    for a multi-label run (`thresholds`: one per label, RunFolder.thresholds) the `labels` at or above
    their thresholds; with `ood` (the image's OOD score, the run's threshold), `unknown` ("none of these")
    and `ood_score`; with `in_set` (a boolean per class: evaluation/conformal.py), the prediction `set`,
    most probable first."""
    result = rank_classes(classes, probs, top)
    if in_set is not None:
        result["set"] = [classes[i] for i in np.argsort(-probs, kind="stable") if in_set[i]]
    if thresholds is not None:  # independent yes/no answers
        result["labels"] = [c for c, p, t in zip(classes, probs, thresholds) if p >= t]
    if ood is not None and ood[1] is not None and not np.isnan(ood[0]):
        result["unknown"], result["ood_score"] = bool(ood[0] > ood[1]), float(ood[0])
    return result


def run_batches(paths: list[str], image_size: int, batch_size: int, infer: Callable[[np.ndarray], np.ndarray],
                describe: Callable[[np.ndarray], dict]) -> list[dict]:
    """Decode `paths` in parallel, run `infer` on batches, and `describe` each row of its output.

    One dict per path, in order: `path` and what `describe` returns, or `path` and `error`.
    """
    results: list[dict | None] = [None] * len(paths)
    with console.progress("Predicting", total=len(paths)) as advance:
        for batch in image_batches(paths, image_size, batch_size):
            for index, reason in batch.failures:
                results[index] = {"path": paths[index], "error": reason}
                console.warn(f"skipped {paths[index]}: {reason}")
            if batch.positions:
                outputs = infer(batch.images)
                for row, index in enumerate(batch.positions):
                    results[index] = {"path": paths[index], **describe(outputs[row])}
            advance(len(batch.positions) + len(batch.failures))
    return results
