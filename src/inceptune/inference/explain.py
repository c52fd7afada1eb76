"""`explain`: Grad-CAM heatmaps showing where the model looked.

Grad-CAM (Selvaraju et al., 2017) weights each channel of an inception
block's output by the mean gradient of the class score (the logit, before
the softmax or sigmoid) with respect to it, keeps the positive part of the
weighted sum, and scales it to the image. The default block is the last one
(`mixed10`, 8x8 cells at 299x299): the coarsest map but the most about the
class; earlier blocks give finer maps.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from inceptune import console
from inceptune.data.images import load_image
from inceptune.data.pipeline import resize_image
from inceptune.errors import ImageError, UserError
from inceptune.inference.inputs import expand_inputs
from inceptune.models.backbone import check_block
from inceptune.runs import RunFolder


class GradCam:
    """Grad-CAM for a classifier saved by inceptune (raw pixels in, probabilities out).

    The map is min-max scaled on the block's grid (as e.g. pytorch-grad-cam
    shows it), then resized bilinearly to the image.
    """

    def __init__(self, model: keras.Model, image_size: int, block: str = "mixed10"):
        check_block(block)
        self.image_size = image_size
        layers = model.layers
        index = next(i for i, layer in enumerate(layers) if isinstance(layer, keras.Model))
        backbone = layers[index]
        self.preprocess = layers[1:index]  # resize, inception_scale
        self.inner = keras.Model(backbone.input, [backbone.get_layer(block).output, backbone.output])
        self.head = layers[index + 1:-1]  # pooling, normalisation, dropout, hidden layers
        self.output_layer = layers[-1]
        self.binary = self.output_layer.units == 1

    def __call__(self, image: np.ndarray, class_index: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(heatmap at the image's own resolution in [0, 1], class probabilities) for raw pixels (H, W, 3)."""
        x = resize_image(image, self.image_size)[None]
        for layer in self.preprocess:
            x = layer(x)
        with tf.GradientTape() as tape:
            activations, features = self.inner(x, training=False)
            for layer in self.head:
                features = layer(features, training=False)
            logits = keras.ops.matmul(features, self.output_layer.kernel) + self.output_layer.bias
            if self.binary:  # one sigmoid unit: class 1 scores +z, class 0 scores -z
                logits = keras.ops.concatenate([-logits, logits], axis=1)
                probs = keras.ops.sigmoid(logits)  # sigmoid(-z) = 1 - p, sigmoid(z) = p
            else:
                probs = keras.ops.softmax(logits)
            chosen = int(np.argmax(probs[0])) if class_index is None else class_index
            score = logits[:, chosen]
        grads = tape.gradient(score, activations)
        weights = keras.ops.mean(grads, axis=(1, 2), keepdims=True)
        cam = keras.ops.relu(keras.ops.sum(activations * weights, axis=-1))[0]
        cam = keras.ops.convert_to_numpy(cam)
        cam = cam - cam.min()  # scaled to [0, 1] over the image, as Grad-CAM maps are usually shown
        cam = cam / cam.max() if cam.max() > 0 else cam
        h, w = image.shape[:2]
        heatmap = keras.ops.convert_to_numpy(keras.ops.image.resize(cam[..., None], (h, w), interpolation="bilinear"))
        return np.clip(heatmap[..., 0], 0.0, 1.0), np.asarray(probs[0])


def explain(run: str, inputs: list[str] | str, out: str | None = None, block: str = "mixed10",
            class_name: str | None = None, unsafe: bool = False) -> list[dict]:
    """Save a Grad-CAM overlay per image (for the predicted class, or `class_name`) under `out`.

    Examples:
        >>> inceptune.explain("runs/flowers", ["rose.jpg"])
        [{'path': 'rose.jpg', 'class': 'roses', 'probability': 0.98, 'overlay': 'runs/flowers/explain/rose.png'}]
    """
    folder = RunFolder.open(run)
    classes = folder.classes
    if class_name is not None and class_name not in classes:
        raise UserError(f"Unknown class '{class_name}'; the model knows {', '.join(classes)}.")
    cam = GradCam(folder.load_model(unsafe), int(folder.config["image_size"]), block)
    target = Path(out) if out else folder.path / "explain"
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
            index = None if class_name is None else classes.index(class_name)
            heatmap, probs = cam(image, index)
            index = int(np.argmax(probs)) if index is None else index
            overlay, n = target / f"{Path(path).stem}.png", 1
            while overlay in used:  # two inputs with the same name
                n += 1
                overlay = target / f"{Path(path).stem}-{n}.png"
            used.add(overlay)
            save_overlay(image, heatmap, overlay, f"{classes[index]} ({probs[index]:.2f}), Grad-CAM on {block}")
            results.append({"path": path, "class": classes[index], "probability": float(probs[index]),
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
