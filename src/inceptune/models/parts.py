"""A saved inceptune model in its parts: preprocessing, backbone, head.

Every model inceptune saves is raw RGB pixels -> preprocessing layers
(Resizing, then scaling: Inception's [-1, 1], or [0, 1] with a grayscale
conversion for networks trained from scratch) -> one nested network (the
backbone) -> for the pretrained recipe, the head: pooling, feature
standardisation, dropout, hidden Dense layers, the output Dense layer; and,
beside the head, on the pooled features, the OOD branch (models/ood.py).
Grad-CAM, export, `train --from` and a continued head all need this split;
they all take it from `model_parts`.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras


@dataclass
class ModelParts:
    preprocess: list[keras.layers.Layer]  # raw pixels -> the backbone's input (Resizing first)
    backbone: keras.Model
    head: list[keras.layers.Layer]  # backbone output -> probabilities; empty when the network has its own
    ood: keras.Model | None = None  # pooled features -> OOD score (models/ood.py), when the model answers one

    @property
    def resize(self) -> keras.layers.Resizing | None:
        return next((layer for layer in self.preprocess if isinstance(layer, keras.layers.Resizing)), None)

    @property
    def output(self) -> keras.layers.Dense | None:
        """The output Dense layer of the head (its activation is the model's: softmax or sigmoid)."""
        return self.head[-1] if self.head and isinstance(self.head[-1], keras.layers.Dense) else None

    @property
    def inception_head(self) -> bool:
        """An Inception-v3 backbone with an inceptune head (the pretrained recipe), not a network from scratch."""
        names = {layer.name for layer in self.backbone.layers}
        return any(n.startswith("mixed") for n in names) and any(isinstance(layer, keras.layers.Normalization)
                                                                 for layer in self.head)

    def head_weights(self) -> list[list]:
        return [layer.get_weights() for layer in self.head]


def model_parts(model: keras.Model) -> ModelParts:
    """Split a model saved by inceptune (or one built like it); ValueError if it has no nested backbone."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    index = next((i for i, layer in enumerate(layers) if isinstance(layer, keras.Model)), None)
    if index is None:
        raise ValueError(f"{model.name} has no nested backbone network")
    from inceptune.models.ood import NAME as OOD

    after = layers[index + 1:]
    ood = next((layer for layer in after if isinstance(layer, keras.Model) and layer.name == OOD), None)
    return ModelParts(layers[:index], layers[index], [layer for layer in after if layer is not ood], ood)
