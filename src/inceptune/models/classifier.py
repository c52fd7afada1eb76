"""The classifier: preprocessing + Inception-v3 backbone + pooling + a new head.

Preprocessing (resize and Inception's [-1, 1] scaling) is made of built-in
Keras layers inside the saved model, so `model.keras` takes raw RGB pixels
(0-255, any size) and loads with plain `keras.saving.load_model`.

The same layer objects also make two small training models: the head alone
(on cached pooled features, phase 1) and the unfrozen top of the backbone
plus head (on cached block activations, phase 2), or the whole network
behind an augmentation (on images, phase 2 with on-the-fly augmentation).
Training them trains the full model.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from inceptune.models.backbone import top_of_backbone

RESIZE = dict(interpolation="bilinear", antialias=True)


@dataclass
class Classifier:
    model: keras.Model  # raw pixels -> class probabilities; this is what is saved
    backbone: keras.Model
    pooling: keras.layers.Layer
    head: list[keras.layers.Layer]
    num_classes: int
    label_smoothing: float = 0.0  # > 0: labels are one-hot (smoothed) for multi-class training
    multilabel: bool = False  # one sigmoid per class, binary cross-entropy
    adapted: bool = False  # the head's standardisation is already fitted (a head kept by --from)

    @property
    def binary(self) -> bool:
        return self.num_classes == 2 and not self.multilabel

    def adapt(self, features: np.ndarray) -> None:
        """Fit the head's feature standardisation to training features (N, D).

        Centres each feature but divides by one overall standard deviation:
        per-feature scaling would blow up features that happen to be constant
        in a small training split.
        """
        features = np.asarray(features, dtype="float64")
        mean = features.mean(axis=0)
        variance = max(float(features.var(axis=0).mean()), 1e-12)
        norm = self.head[0]
        norm.adapt_mean.assign(mean.astype("float32"))
        norm.adapt_variance.assign(np.full_like(mean, variance, dtype="float32"))
        norm.finalize_state()

    def head_model(self) -> keras.Model:
        """Pooled features -> probabilities (phase 1)."""
        inputs = keras.Input(self.pooling.compute_output_shape(self.backbone.output.shape)[1:], name="features")
        return keras.Model(inputs, _apply(self.head, inputs), name="head")

    def top_model(self, unfreeze_from: str, train_batchnorm: bool = False) -> keras.Model:
        """Block activations before `unfreeze_from` -> probabilities (phase 2).

        The backbone part runs in inference mode unless `train_batchnorm`
        (then its trainable BatchNorm layers use batch statistics in training).
        """
        top = top_of_backbone(self.backbone, unfreeze_from)
        inputs = keras.Input(top.input.shape[1:], name="activations")
        outputs = _apply(self.head, self.pooling(top(inputs, training=None if train_batchnorm else False)))
        return keras.Model(inputs, outputs, name=f"fine_tune_from_{unfreeze_from}")

    def image_model(self, augment: keras.Model | None, train_batchnorm: bool = False) -> keras.Model:
        """Images (S x S, 0-255) -> probabilities, through `augment` when training (phase 2 on images)."""
        inputs = keras.Input(self.backbone.input.shape[1:], name="image")
        x = augment(inputs) if augment is not None else inputs
        x = self.backbone(self.model.get_layer("inception_scale")(x), training=None if train_batchnorm else False)
        return keras.Model(inputs, _apply(self.head, self.pooling(x)), name="fine_tune_on_images")

    @property
    def one_hot(self) -> bool:
        """Multi-class labels as one-hot rows (label smoothing needs them), else class indices."""
        return not self.binary and self.label_smoothing > 0

    def loss(self) -> keras.losses.Loss:
        """Binary cross-entropy on 0/1 labels (per class when multi-label), or categorical on class
        indices (one-hot when smoothing)."""
        if self.binary or self.multilabel:
            return keras.losses.BinaryCrossentropy(label_smoothing=self.label_smoothing)
        if self.one_hot:
            return keras.losses.CategoricalCrossentropy(label_smoothing=self.label_smoothing)
        return keras.losses.SparseCategoricalCrossentropy()

    def metrics(self) -> list:
        if self.binary or self.multilabel:  # multi-label: the fraction of right yes/no answers
            return [keras.metrics.BinaryAccuracy(name="accuracy")]
        if self.one_hot:
            return [keras.metrics.CategoricalAccuracy(name="accuracy")]
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


def refresh_normalization(model: keras.Model) -> None:
    """After set_weights: Normalization layers compute from tensors copied at finalize_state, so refresh them."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Normalization) and layer.built:
            layer.finalize_state()


def build_classifier(
    backbone: keras.Model, num_classes: int, image_size: int, dropout: float = 0.2, hidden_units: tuple[int, ...] = (),
    multilabel: bool = False,
) -> Classifier:
    """Wrap a backbone into an image classifier with a new head.

    Args:
        backbone: InceptionV3 without top, inputs in [-1, 1].
        num_classes: 2 gives one sigmoid unit, more give a softmax.
        multilabel: one sigmoid unit per class instead (independent yes/no answers).
        image_size: images are resized to this square inside the model.
        dropout: dropout rate before each Dense layer of the head.
        hidden_units: optional hidden Dense(relu) layers, e.g. (1024,) as in
            the classic recipe.
    """
    # === Layers ===
    resize = keras.layers.Resizing(image_size, image_size, name="resize", **RESIZE)
    scale = inception_scale()
    pooling = keras.layers.GlobalAveragePooling2D(name="avg_pool")
    # Standardising the pooled features (adapted on the training split before
    # phase 1) keeps the head well conditioned whatever the weights' scale.
    head: list[keras.layers.Layer] = [keras.layers.Normalization(name="feature_norm")]
    for i, units in enumerate(hidden_units):
        head += [keras.layers.Dropout(dropout, name=f"head_dropout_{i}"),
                 keras.layers.Dense(units, activation="relu", name=f"head_dense_{i}")]
    head += [keras.layers.Dropout(dropout, name="head_dropout"),
             keras.layers.Dense(1 if num_classes == 2 and not multilabel else num_classes,
                                activation="sigmoid" if num_classes == 2 or multilabel else "softmax",
                                dtype="float32", name="predictions")]  # FP32 outputs under mixed precision too

    # === Functional Model ===
    inputs = keras.Input((None, None, 3), name="image")
    features = pooling(backbone(scale(resize(inputs)), training=False))
    model = keras.Model(inputs, _apply(head, features), name="inceptune_classifier")
    return Classifier(model, backbone, pooling, head, num_classes, multilabel=multilabel)


def inception_scale() -> keras.layers.Layer:
    """Inception's preprocess_input, x / 127.5 - 1, as a built-in layer."""
    return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="inception_scale")


def _apply(layers: list[keras.layers.Layer], x):
    for layer in layers:
        x = layer(x)
    return x


def class_probabilities(outputs: np.ndarray, multilabel: bool = False) -> np.ndarray:
    """Model outputs as one probability per class ((N, 1) sigmoid becomes (N, 2)); multi-label
    outputs are independent sigmoids and stay as they are."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if multilabel:
        return outputs
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        return np.concatenate([1.0 - outputs, outputs], axis=1)
    return outputs / outputs.sum(axis=1, keepdims=True)  # float32 softmax rows miss 1 by rounding
