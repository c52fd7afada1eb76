"""What a quantized export costs: FP32 and quantized answers compared on the run's held-out photos.

The held-out photos are the run's val split, never its test split: the test
split measures the run and chooses nothing, the deployed model included (a
refit has seen val, so the figures measure only what quantization changes).

Two checks, both needed to keep an int8 export:
- accuracy (`accuracy_check`): accuracy, or macro F1 at the run's thresholds
  for a multi-label run, may drop by at most `max_drop` (absolute), and an
  exact McNemar test on the photos only one of the two gets right must not
  find int8 worse (INT8_ALPHA);
- every output (`outputs_check`): against the FP32 Keras model, the same
  top-1 class and the same "none of these" decision on INT8_MIN_AGREEMENT of
  the photos (refused when an exact binomial test finds more disagreements
  than that share would give: 2 of 102 photos can come from an export that
  agrees on 99%, 4 of 102 hardly), and no probability further than
  INT8_MAX_PROBABILITY_DIFF.

bf16 exports are checked the same way: on flowers5 at 299, a bf16 export
disagreed with Keras on "none of these" for 2 of 102 val photos (its OOD
score rounds to bf16's 8 bits near the threshold), and on 202 unseen photos
answered the same top-1 for all and "none of these" for 9.2% of other kinds
where Keras did for 9.8%.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import f1_score

from inceptune.data.dataset import read_manifest
from inceptune.data.images import load_image
from inceptune.data.multilabel import SEPARATOR
from inceptune.data.pipeline import resize_image
from inceptune.errors import ImageError
from inceptune.models.classifier import class_probabilities
from inceptune.models.ood import split_outputs
from inceptune.runs import RunFolder
from inceptune.vocabulary.limits import INT8_ALPHA, INT8_MAX_PROBABILITY_DIFF, INT8_MIN_AGREEMENT, OOD_KEEP

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

    def correct(self, outputs) -> np.ndarray:
        """(N,) whether each photo is answered right (every label, for a multi-label run)."""
        probs = class_probabilities(split_outputs(outputs)[0], self.multilabel)
        if self.multilabel:
            return np.all((probs >= self.thresholds) == self.truth.astype(bool), axis=1)
        return probs.argmax(axis=1) == self.truth

    def batches(self) -> Iterable[np.ndarray]:
        for i in range(0, len(self.pixels), BATCH):
            yield self.pixels[i:i + BATCH]

    def outputs_with(self, infer: Callable[[np.ndarray], object]) -> list[np.ndarray]:
        """`infer`'s raw outputs (pixels -> probability outputs[, OOD scores]) on these photos, a batch at a time."""
        parts = [split_outputs(infer(batch)) for batch in self.batches()]
        outputs = [np.concatenate([p[0] for p in parts])]
        if all(p[1] is not None for p in parts):
            outputs.append(np.concatenate([p[1] for p in parts]))
        return outputs

    def score_with(self, infer: Callable[[np.ndarray], object]) -> float:
        """The metric of `infer` (pixels -> raw outputs), run a batch at a time."""
        return self.score(self.outputs_with(infer))


def held_out(folder: RunFolder) -> HeldOut | None:
    """The run's val photos that are on this machine, with their labels; None when none (never the test split)."""
    records = read_manifest(folder.file("manifest.csv")) if folder.file("manifest.csv").is_file() else []
    classes = folder.classes
    multilabel = folder.task == "multilabel"
    pixels, truth = [], []
    for r in (r for r in records if r.split == "val"):
        try:
            pixels.append(resize_image(load_image(r.path), folder.image_size))
        except ImageError:
            continue
        if multilabel:
            names = set(filter(None, r.label.split(SEPARATOR)))
            truth.append([int(c in names) for c in classes])
        else:
            truth.append(classes.index(r.label))
    if not pixels:
        return None
    thresholds = np.asarray(folder.thresholds) if multilabel and folder.thresholds else 0.5
    return HeldOut("val", np.stack(pixels).astype("float32"), np.asarray(truth), multilabel, thresholds)


def accuracy_check(held: HeldOut, fp32: list[np.ndarray], quantized: list[np.ndarray], max_drop: float,
                   method: str, calibration_images: int) -> dict:
    """What export.json records of a quantized export's accuracy check, from both models' raw outputs on `held`:
    both scores, the drop, and the exact McNemar test on the discordant photos (two-sided binomial on the
    photos only one of the two gets right)."""
    first, second = held.score(fp32), held.score(quantized)
    right, right_q = held.correct(fp32), held.correct(quantized)
    lost, gained = int(np.sum(right & ~right_q)), int(np.sum(~right & right_q))
    p_value = float(binomtest(min(lost, gained), lost + gained, 0.5).pvalue) if lost + gained else 1.0
    worse = lost > gained and p_value < INT8_ALPHA
    drop = first - second
    return {"split": held.split, "images": len(held.pixels), "metric": held.metric, "fp32": first,
            "quantized": second, "drop": drop, "max_drop": max_drop,
            "mcnemar": {"only_fp32_right": lost, "only_quantized_right": gained, "p_value": p_value,
                        "alpha": INT8_ALPHA},
            "passed": bool(drop <= max_drop + 1e-12 and not worse),
            "method": method, "calibration_images": calibration_images}


def outputs_check(held: HeldOut, keras_outputs: list[np.ndarray], quantized: list[np.ndarray],
                  ood_threshold: float | None) -> dict:
    """A quantized export against the FP32 Keras model on `held`, on every output: top-1 agreement, the largest
    probability difference, and agreement on "none of these" (when the run has an OOD score): Keras at the
    run's threshold, the export at its own, fitted on its own scores of these photos as train fitted the run's
    (the OOD_KEEP quantile), so it keeps as many known photos known."""
    expected = class_probabilities(keras_outputs[0], held.multilabel)
    got = class_probabilities(quantized[0], held.multilabel)
    if held.multilabel:
        same_top1 = np.all((expected >= held.thresholds) == (got >= held.thresholds), axis=1)
    else:
        same_top1 = expected.argmax(axis=1) == got.argmax(axis=1)
    diff = float(np.abs(expected - got).max())
    same_unknown = own = None
    if ood_threshold is not None and len(keras_outputs) > 1:
        same_unknown = np.zeros(len(expected), bool)  # an export without the score cannot say "none of these"
        if len(quantized) > 1:
            own = float(np.quantile(quantized[1], OOD_KEEP))
            same_unknown = (keras_outputs[1] > ood_threshold) == (quantized[1] > own)
    top1, top1_p = _agreement(same_top1)
    unknown, unknown_p = (None, None) if same_unknown is None else _agreement(same_unknown)
    failed = [what for what, bad in (
        (f"top-1 agreement {top1:.1%} (p = {top1_p:.2g} that it keeps {INT8_MIN_AGREEMENT:.0%})",
         top1_p < INT8_ALPHA),
        (f"largest probability difference {diff:.3f} (at most {INT8_MAX_PROBABILITY_DIFF})",
         diff > INT8_MAX_PROBABILITY_DIFF),
        (f"the same 'none of these' decision on {unknown or 0:.1%} (p = {unknown_p or 0:.2g} that it keeps "
         f"{INT8_MIN_AGREEMENT:.0%})", unknown_p is not None and unknown_p < INT8_ALPHA))
        if bad]
    return {"split": held.split, "images": len(held.pixels), "top1_agreement": top1, "top1_p_value": top1_p,
            "max_abs_diff": diff, "unknown_agreement": unknown, "unknown_p_value": unknown_p, "ood_threshold": own,
            "min_agreement": INT8_MIN_AGREEMENT, "alpha": INT8_ALPHA,
            "max_probability_diff": INT8_MAX_PROBABILITY_DIFF, "failed": failed, "passed": not failed}


def _agreement(same: np.ndarray) -> tuple[float, float]:
    """The share of photos answered alike, and the exact one-sided binomial p-value of as many disagreements or
    more from an export that disagrees on 1 - INT8_MIN_AGREEMENT of photos: small when it disagrees more."""
    disagreements = int(np.sum(~same))
    p_value = float(binomtest(disagreements, len(same), 1 - INT8_MIN_AGREEMENT, alternative="greater").pvalue) \
        if disagreements else 1.0
    return float(np.mean(same)), p_value
