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

from inceptune.vocabulary.sources import source_blocks
from inceptune.models.standardize import standardization
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
    base: keras.Model | None = None  # the whole Inception-v3 the backbone was cut from: feature extraction runs it
    features: object = None  # the pooled features (the head's input) in `model`'s graph: the OOD branch reads them

    @property
    def extractor_base(self) -> keras.Model:
        return self.base if self.base is not None else self.backbone

    @property
    def binary(self) -> bool:
        return self.num_classes == 2 and not self.multilabel

    def adapt(self, features: np.ndarray) -> None:
        """Fit the head's feature standardisation to training features (N, D).

        Centres each feature but divides by one overall standard deviation:
        per-feature scaling would blow up features that happen to be constant
        in a small training split.
        """
        set_standardization(self.head[0], *standardization(features))

    def fold_temperature(self, temperature: float) -> None:
        """Divide the output layer's logits by `temperature` (calibration): its kernel and bias are divided, so
        the saved model, the head and the top, which share the layer, answer the calibrated probabilities, and
        exports need nothing new."""
        output = self.head[-1]
        kernel, bias = output.get_weights()
        output.set_weights([kernel / temperature, bias / temperature])

    def with_ood(self, branch: keras.Model) -> keras.Model:
        """The saved model with an OOD branch (models/ood.py) on its pooled features: pixels ->
        [probabilities, ood_score]."""
        return keras.Model(self.model.inputs, [self.model.outputs[0], branch(self.features)], name=self.model.name)

    def features_model(self, unfreeze_from: str | None) -> keras.Model | None:
        """Cached block activations before `unfreeze_from` -> pooled features, as the (fine-tuned) model computes
        them; None when the cache holds the pooled features themselves (no fine-tuning)."""
        if unfreeze_from is None:
            return None
        top = top_of_backbone(self.backbone, unfreeze_from)
        inputs = keras.Input(top.input.shape[1:], name="activations")
        return keras.Model(inputs, self.pooling(top(inputs, training=False)), name=f"features_from_{unfreeze_from}")

    def head_model(self) -> keras.Model:
        """Pooled features -> probabilities (phase 1)."""
        shape = (self.pooling.output.shape if isinstance(self.pooling, keras.Model)
                 else self.pooling.compute_output_shape(self.backbone.output.shape))
        inputs = keras.Input(shape[1:], name="features")
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
        return head_loss(self.num_classes, self.label_smoothing, self.multilabel)[0]

    def metrics(self) -> list:
        if self.binary or self.multilabel:  # multi-label: the fraction of right yes/no answers
            return [keras.metrics.BinaryAccuracy(name="accuracy")]
        if self.one_hot:
            return [keras.metrics.CategoricalAccuracy(name="accuracy")]
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


def set_standardization(norm: keras.layers.Normalization, mean: np.ndarray, variance: float) -> None:
    """Make a built Normalization layer compute (x - mean) / sqrt(variance)."""
    norm.adapt_mean.assign(np.asarray(mean, "float32"))
    norm.adapt_variance.assign(np.full(np.shape(mean), variance, dtype="float32"))
    norm.finalize_state()


def refresh_normalization(model: keras.Model) -> None:
    """After set_weights: Normalization layers compute from tensors copied at finalize_state, so refresh them."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Normalization) and layer.built:
            layer.finalize_state()


def build_classifier(
    backbone: keras.Model, num_classes: int, image_size: int, dropout: float = 0.2, hidden_units: tuple[int, ...] = (),
    multilabel: bool = False, block: str = "mixed10", pooling: str = "avg",
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
        block, pooling: the feature source (vocabulary/sources.py): the backbone stops at `block` (the saved
            model runs nothing above it), pooled by avg, max or avgmax (both, side by side).
    """
    base = backbone
    blocks = source_blocks(block)
    if len(blocks) > 1:  # several blocks side by side: one output each, shallow first
        backbone = keras.Model(backbone.input, [backbone.get_layer(b).output for b in blocks], name=backbone.name)
    elif block != backbone.layers[-1].name:
        backbone = keras.Model(backbone.input, backbone.get_layer(block).output, name=backbone.name)
    # === Layers ===
    resize = keras.layers.Resizing(image_size, image_size, name="resize", **RESIZE)
    scale = inception_scale()
    pooling = source_pooling(pooling, [o.shape[-1] for o in backbone.outputs])
    head = head_layers(num_classes, dropout, hidden_units, multilabel)

    # === Functional Model ===
    inputs = keras.Input((None, None, 3), name="image")
    features = pooling(backbone(scale(resize(inputs)), training=False))
    model = keras.Model(inputs, _apply(head, features), name="inceptune_classifier")
    return Classifier(model, backbone, pooling, head, num_classes, multilabel=multilabel, base=base,
                      features=features)


def source_pooling(pooling: str, channels: list[int]) -> keras.layers.Layer:
    """Block activations -> one vector: average, max, or both side by side (avg first), block by block
    (shallow first), in the order the cache's kinds are read."""
    if len(channels) == 1 and pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")
    if len(channels) == 1 and pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")
    inputs = [keras.Input((None, None, c), name=f"activations_{i}") for i, c in enumerate(channels)]
    pooled = []
    for i, x in enumerate(inputs):
        if pooling in ("avg", "avgmax"):
            pooled.append(keras.layers.GlobalAveragePooling2D(name=f"avg_{i}")(x))
        if pooling in ("max", "avgmax"):
            pooled.append(keras.layers.GlobalMaxPooling2D(name=f"max_{i}")(x))
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], keras.layers.Concatenate(name="side_by_side")(pooled),
                       name=f"{pooling}_pool")


def head_layers(num_classes: int, dropout: float = 0.2, hidden_units: tuple[int, ...] = (),
                multilabel: bool = False) -> list[keras.layers.Layer]:
    """Standardisation, [dropout, Dense(relu)] per hidden layer, dropout, the output Dense layer."""
    # Standardising the pooled features (adapted on the training split before
    # phase 1) keeps the head well conditioned whatever the weights' scale.
    head: list[keras.layers.Layer] = [keras.layers.Normalization(name="feature_norm")]
    for i, units in enumerate(hidden_units):
        head += [keras.layers.Dropout(dropout, name=f"head_dropout_{i}"),
                 keras.layers.Dense(units, activation="relu", name=f"head_dense_{i}")]
    return head + [keras.layers.Dropout(dropout, name="head_dropout"),
                   keras.layers.Dense(1 if num_classes == 2 and not multilabel else num_classes,
                                      activation="sigmoid" if num_classes == 2 or multilabel else "softmax",
                                      dtype="float32", name="predictions")]  # FP32 outputs under mixed precision


def head_loss(num_classes: int, label_smoothing: float = 0.0, multilabel: bool = False
              ) -> tuple[keras.losses.Loss, bool]:
    """Binary cross-entropy on 0/1 labels (per class when multi-label), or categorical on class indices
    (one-hot when smoothing); and whether multi-class labels must be one-hot rows."""
    if num_classes == 2 or multilabel:
        return keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing), False
    if label_smoothing > 0:
        return keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing), True
    return keras.losses.SparseCategoricalCrossentropy(), False


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
