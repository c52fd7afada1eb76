"""`inceptune demo`: the whole workflow on a small generated dataset, offline, in a minute or two.

Draws three classes of shapes (circles, squares, triangles), each in its
own range of hues, on noisy backgrounds (colour keeps the task learnable
even from random weights), trains with the default two-phase recipe at a small image
size, evaluates on the held-out test split and predicts a few images.
Uses the ImageNet weights when they can be had (download or
INCEPTUNE_WEIGHTS), random weights otherwise.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from inceptune import console
from inceptune.errors import UserError

SHAPES = ("circles", "squares", "triangles")


def make_shapes_dataset(root: str | Path, per_class: int = 40, size: int = 128, seed: int = 0) -> Path:
    """Write `per_class` JPEGs of each shape class under `root` (one folder per class)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for shape in SHAPES:
        folder = root / shape
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            path = folder / f"{shape}_{i:03d}.jpg"
            if not path.exists():
                _draw(shape, rng, size).save(path, quality=90)
    return root


def _draw(shape: str, rng: np.random.Generator, size: int) -> Image.Image:
    noise = rng.normal(rng.uniform(60, 200), 25, (size, size, 3)).clip(0, 255).astype(np.uint8)
    img = Image.fromarray(noise)
    draw = ImageDraw.Draw(img)
    r = rng.uniform(0.18, 0.35) * size
    cx, cy = rng.uniform(r, size - r, 2)
    hue = SHAPES.index(shape) / len(SHAPES) + rng.uniform(-0.08, 0.08)
    color = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue % 1.0, rng.uniform(0.6, 1.0), rng.uniform(0.5, 1.0)))
    if shape == "circles":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "squares":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=color)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)
    return img


def demo(out: str = "runs/demo", weights: str = "imagenet", image_size: int = 150) -> dict:
    """Generate the shapes dataset, train, evaluate, predict; return the metrics."""
    from inceptune.inference.model import load
    from inceptune.models.weights import resolve_weights
    from inceptune.workflows.train import train

    out_path = Path(out)
    data = make_shapes_dataset(out_path / "data")
    console.info(f"Demo dataset: {len(SHAPES)} classes x 40 generated images in {data}")
    try:
        resolve_weights(weights)
    except UserError as exc:
        console.warn(f"{exc} The demo goes on with random weights, which shows the workflow but not the accuracy "
                     "that pretrained weights give.")
        weights = "none"
    # Random weights give no pretrained features for the recipe search to choose among: the recipe as given.
    result = train(str(data), out=str(out_path / "run"), weights=weights, image_size=image_size,
                   epochs=30, fine_tune_epochs=3, overwrite=True, **({"search": "none"} if weights == "none" else {}))
    model = load(str(result.run))
    metrics = model.evaluate()
    low, high = (metrics.get("ci95") or {}).get("accuracy", (float("nan"), float("nan")))
    console.info(f"Test split: accuracy {metrics['accuracy']:.3f} (95% CI {low:.3f}-{high:.3f}) on "
                 f"{metrics['images']} images.")
    samples = [str(data / shape / f"{shape}_000.jpg") for shape in SHAPES]
    for r in model.predict(samples, top=1):
        console.info(f"  {r['path']}: {r['top'][0]['label']} ({r['top'][0]['probability']:.2f})")
    console.info(f"Done. The trained model, its report.html (metrics and plots), labels and history are in {result.run}/; try\n"
                 f"  inceptune predict {result.run} {samples[0]}\n  inceptune evaluate {result.run}")
    return metrics
