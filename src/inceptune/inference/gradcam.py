"""Grad-CAM heatmaps: where the model looked.

Grad-CAM (Selvaraju et al., 2017) weights each channel of an inception
block's output by the mean gradient of the class score (the logit, before
the softmax or sigmoid) with respect to it, keeps the positive part of the
weighted sum, and scales it to the image. The default block is the last one
(`mixed10`, 8x8 cells at 299x299): the coarsest map but the most about the
class; earlier blocks give finer maps.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from inceptune.data.pipeline import resize_image
from inceptune.errors import UserError
from inceptune.models.backbone import check_block
from inceptune.models.parts import model_parts


class GradCam:
    """Grad-CAM for a classifier saved by inceptune with the pretrained recipe (raw pixels in, probabilities out).

    The probabilities are the model's own: softmax over classes, one sigmoid
    for two classes, or a sigmoid per label for multi-label runs. The map is
    min-max scaled on the block's grid (as e.g. pytorch-grad-cam shows it),
    then resized bilinearly to the image.
    """

    def __init__(self, model: keras.Model, image_size: int, block: str = "mixed10"):
        check_block(block)
        parts = model_parts(model)
        if not parts.inception_head:
            raise UserError("Grad-CAM needs a model of the pretrained recipe (an Inception-v3 base and a head); "
                            "this one was trained from scratch.")
        self.image_size = image_size
        self.preprocess = parts.preprocess  # resize, inception_scale
        backbone = parts.backbone
        top = backbone.layers[-1].name  # the block the model's features come from (mixed10, or lower)
        if block not in {layer.name for layer in backbone.layers}:
            if block != "mixed10":  # the default asks for the last block: the model's own
                raise UserError(f"This model's features come from {top}; choose a block up to {top}.")
            block = top
        self.block = block
        self.inner = keras.Model(backbone.input, [backbone.get_layer(block).output, backbone.output])
        self.head = parts.head[:-1]  # pooling, normalisation, dropout, hidden layers
        self.output_layer = parts.output
        self.sigmoid = getattr(self.output_layer.activation, "__name__", "") == "sigmoid"
        self.binary = self.sigmoid and self.output_layer.units == 1  # one unit for two classes

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
            # sigmoid(-z) = 1 - p and sigmoid(z) = p for two classes; a sigmoid per label when multi-label
            probs = keras.ops.sigmoid(logits) if self.sigmoid else keras.ops.softmax(logits)
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
