"""Pictures of a run: training curves, confusion matrices, ROC and precision-recall
curves, the reliability diagram and a gallery of the most confidently wrong images.

Each function draws one PNG with matplotlib (Agg, no display needed) and
writes it atomically.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay  # noqa: E402

from inceptune.atomic import atomic_path  # noqa: E402
from inceptune.data.images import load_image  # noqa: E402
from inceptune.errors import ImageError  # noqa: E402


def save_figure(fig, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def training_curves(history: list[dict], path) -> Path:
    """Loss and accuracy per epoch, train and validation, across both phases (boundary marked)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    epochs = np.arange(1, len(history) + 1)
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = [row.get(prefix + metric) for row in history]
            if any(v is not None and v == v for v in values):
                ax.plot(epochs, [np.nan if v is None else v for v in values], style, marker=".",
                        label=("validation " if prefix else "train ") + metric)
        boundaries = [i for i in range(1, len(history)) if history[i]["phase"] != history[i - 1]["phase"]]
        for b in boundaries:
            ax.axvline(b + 0.5, color="gray", linestyle=":", linewidth=1)
            ax.text(b + 0.6, ax.get_ylim()[1], f" {history[b]['phase']}", va="top", fontsize=8, color="gray")
        kept = [i + 1 for i, row in enumerate(history) if row.get("kept") in (True, "True")]
        for k in kept:
            ax.axvline(k, color="green", alpha=0.25, linewidth=3)
        ax.set_xlabel("epoch (phase 1, then fine-tuning)")
        ax.set_ylabel(metric)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("Training curves (green: weights kept)")
    return save_figure(fig, path)


def confusion_matrices(matrix: list[list[int]], classes: list[str], path) -> Path:
    """The confusion matrix in counts and normalised by true class, side by side."""
    cm = np.asarray(matrix)
    size = max(4.0, 0.5 * len(classes) + 3)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size))
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = np.nan_to_num(cm / cm.sum(axis=1, keepdims=True))
    for ax, values, title, fmt in ((axes[0], cm, "counts", "d"), (axes[1], normalised, "normalised by true class",
                                                                      ".2f")):
        ConfusionMatrixDisplay(values, display_labels=classes).plot(ax=ax, values_format=fmt, colorbar=False,
                                                                     xticks_rotation=45, cmap="Blues")
        ax.set_title(title)
    return save_figure(fig, path)


def roc_curves(y_true: np.ndarray, probs: np.ndarray, classes: list[str], path) -> Path:
    """ROC curve: of the positive class for two classes, one-vs-rest per class for more."""
    return _curves(RocCurveDisplay, y_true, probs, classes, path, "ROC curve")


def precision_recall_curves(y_true: np.ndarray, probs: np.ndarray, classes: list[str], path) -> Path:
    return _curves(PrecisionRecallDisplay, y_true, probs, classes, path, "Precision-recall curve")


def _curves(display, y_true, probs, classes, path, title) -> Path:
    fig, ax = plt.subplots(figsize=(6, 5))
    shown = [1] if len(classes) == 2 else range(len(classes))
    for i in shown:
        positives = y_true == i
        if positives.all() or not positives.any():
            continue  # undefined for a class with no positives (or no negatives)
        display.from_predictions(positives, probs[:, i], name=classes[i], ax=ax)
    if display is RocCurveDisplay:
        ax.plot([0, 1], [0, 1], ":", color="gray")
        ax.set(xlabel="false positive rate", ylabel="true positive rate")
    else:
        ax.set(xlabel="recall", ylabel="precision")
    ax.set_title(title + ("" if len(classes) == 2 else " (one vs rest)"))
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def reliability_diagram(panels: list[tuple[str, list[dict], float]], path) -> Path:
    """Accuracy against confidence per bin, one column per (title, bins, ECE) panel (before and after
    calibration): a calibrated model follows the diagonal."""
    fig, axes = plt.subplots(2, len(panels), figsize=(5.5 * len(panels), 6), gridspec_kw={"height_ratios": [3, 1]},
                             sharex=True, squeeze=False)
    for column, (title, bins, ece) in enumerate(panels):
        ax, hist = axes[0, column], axes[1, column]
        width = [b["high"] - b["low"] for b in bins]
        lows = [b["low"] for b in bins]
        ax.bar(lows, [b["accuracy"] for b in bins], width=width, align="edge", edgecolor="black", alpha=0.7,
               label="accuracy")
        ax.plot([b["confidence"] for b in bins], [b["confidence"] for b in bins], "r.", label="mean confidence")
        ax.plot([0, 1], [0, 1], ":", color="gray", label="perfect calibration")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{title} (ECE {ece:.3f})")
        ax.legend(fontsize=8, loc="upper left")
        hist.bar(lows, [b["count"] for b in bins], width=width, align="edge", edgecolor="black", color="gray")
        hist.set_xlabel("confidence of the predicted class")
        hist.set_ylabel("images")
        hist.set_xlim(0, 1)
    return save_figure(fig, path)


THUMBNAIL = 256  # pixels on the longer side: a gallery cell is 3 inches at 100 dpi; full-size photos only cost drawing time


def _thumbnail(image: np.ndarray) -> np.ndarray:
    """A uint8 photo at most THUMBNAIL pixels on its longer side; other arrays (arrays given as data) as they are."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or max(image.shape[:2]) <= THUMBNAIL:
        return image
    thumb = Image.fromarray(image.squeeze())
    thumb.thumbnail((THUMBNAIL, THUMBNAIL))
    return np.asarray(thumb)


def error_gallery(errors: list[dict], path, columns: int = 4) -> Path:
    """Thumbnails of misclassified images: `errors` holds path, true, predicted and confidence."""
    rows = max(1, math.ceil(len(errors) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    if not errors:
        axes[0, 0].text(0, 0.5, "No misclassified images.", fontsize=12)
    for ax, e in zip(axes.flat, errors):
        try:
            image = _thumbnail(e["image"] if "image" in e else load_image(e["path"]))
            ax.imshow(image.squeeze(), cmap="gray" if image.ndim == 2 or image.shape[-1] == 1 else None)
        except (ImageError, OSError):
            ax.text(0.5, 0.5, "(image unavailable)", ha="center")
        ax.set_title(f"true: {e['true']}\npredicted: {e['predicted']} ({e['confidence']:.2f})", fontsize=9,
                     color="darkred")
    fig.suptitle("Most confidently wrong")
    return save_figure(fig, path)
