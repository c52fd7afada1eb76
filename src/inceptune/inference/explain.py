"""`explain`: Grad-CAM overlays of a run's images, saved as PNG files (inference/gradcam.py computes them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inceptune import console
from inceptune.data.images import load_image
from inceptune.errors import ImageError, UserError
from inceptune.inference.inputs import expand_inputs
from inceptune.inference.model import load
from inceptune.models.backbone import check_block


def explain(run: str, inputs: list[str] | str, out: str | None = None, block: str = "mixed10",
            class_name: str | None = None, unsafe: bool = False) -> list[dict]:
    """Save a Grad-CAM overlay per image (for the predicted class, or `class_name`) under `out`.

    Examples:
        >>> inceptune.explain("runs/flowers", ["rose.jpg"])
        [{'path': 'rose.jpg', 'class': 'roses', 'probability': 0.98, 'overlay': 'runs/flowers/explain/rose.png'}]
    """
    check_block(block)
    model = load(run, runtime="keras", unsafe=unsafe)
    if class_name is not None and class_name not in model.classes:
        raise UserError(f"Unknown class '{class_name}'; the model knows {', '.join(model.classes)}.")
    target = Path(out) if out else model.folder.path / "explain"
    paths = expand_inputs([inputs] if isinstance(inputs, str) else list(inputs))
    results, used = [], set()
    with console.progress("Explaining", total=len(paths)) as advance:
        for path in paths:
            try:
                image = load_image(path)
            except ImageError as exc:
                console.warn(f"skipped {path}: {exc.reason}")
                results.append({"path": path, "error": exc.reason})
                advance()
                continue
            answer = model.explain(image, class_name, block)
            overlay, n = target / f"{Path(path).stem}.png", 1
            while overlay in used:  # two inputs with the same name
                n += 1
                overlay = target / f"{Path(path).stem}-{n}.png"
            used.add(overlay)
            save_overlay(image, answer["heatmap"], overlay,
                         f"{answer['class']} ({answer['probability']:.2f}), Grad-CAM on {block}")
            results.append({"path": path, "class": answer["class"], "probability": answer["probability"],
                            "overlay": str(overlay)})
            advance()
    return results


def save_overlay(image: np.ndarray, heatmap: np.ndarray, path: Path, title: str) -> Path:
    """The image and the image with its heatmap blended on top, side by side."""
    from inceptune.evaluation.plots import plt, save_figure

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4.6))
    for ax in (left, right):
        ax.imshow(image.astype("uint8"))
        ax.axis("off")
    right.imshow(heatmap, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    left.set_title("image")
    right.set_title(title, fontsize=10)
    return save_figure(fig, path)
