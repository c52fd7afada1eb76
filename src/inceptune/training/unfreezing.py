"""Phase 2's fine-tuning schedule: which blocks train at each epoch, and how fast.

    --unfreeze-from B / --unfreeze-top N  the deepest block phase 2 ever trains (mixed9 = the recipe's top two)
    --unfreeze-every M                    gradual: the top block first, one more block below every M epochs,
                                          down to B (0: every block from the first epoch)
    --block-lr-decay F                    discriminative rates: the head and the top block train at
                                          --fine-tune-lr, each block below at F times the block above it
    --train-batchnorm                     BatchNorm of the unfrozen blocks trains (batch statistics);
                                          by default it stays in inference mode, as in the classic recipe

Phase 2 runs on the cached activations entering B, so the blocks below B
never run. Blocks between B and the ones unfrozen so far run frozen
(forward only) until their turn. The optimizer holds state for every
variable phase 2 will ever train from the start, so unfreezing a block
changes which gradients are computed, not the optimizer (and a resumed run
restores it whole).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from inceptune import console
from inceptune.models.backbone import BLOCKS, block_layers, freeze


@dataclass
class Unfreezing:
    backbone: keras.Model
    deepest: str  # the lowest block phase 2 trains (--unfreeze-from)
    every: int = 0  # --unfreeze-every: epochs between unfreezing one more block; 0 = all at once
    rate_decay: float = 1.0  # --block-lr-decay
    train_batchnorm: bool = False

    @property
    def blocks(self) -> list[str]:
        """The blocks phase 2 trains, top first: the backbone's last (mixed10, or the block the features
        come from), then down to the deepest."""
        top = self.backbone.layers[-1].name
        return list(reversed(BLOCKS[BLOCKS.index(self.deepest):BLOCKS.index(top) + 1]))

    def block_at(self, epoch: int) -> str:
        """The lowest unfrozen block during (0-based) epoch `epoch`."""
        if self.every <= 0:
            return self.deepest
        return self.blocks[min(len(self.blocks) - 1, epoch // self.every)]

    def apply(self, block: str) -> None:
        freeze(self.backbone, block, self.train_batchnorm)

    def rate_factors(self) -> dict[int, float]:
        """id(variable) -> multiple of the fine-tune learning rate, for the variables not at 1."""
        if self.rate_decay == 1.0:
            return {}
        factors = {}
        for depth, block in enumerate(self.blocks):
            for layer in block_layers(self.backbone, block):
                for variable in layer.weights:
                    factors[id(variable)] = self.rate_decay ** depth
        return factors

    def optimizer(self, learning_rate) -> keras.optimizers.Optimizer:
        factors = self.rate_factors()
        return BlockRateAdam(factors, learning_rate) if factors else keras.optimizers.Adam(learning_rate)

    def describe(self) -> str:
        parts = [f"blocks {self.blocks[-1]}..{self.blocks[0]}"]
        if self.every > 0 and len(self.blocks) > 1:
            parts.append(f"{self.blocks[0]} first, one more block every {self.every} epoch(s)")
        if self.rate_decay != 1.0:
            rates = ", ".join(f"{b} x{self.rate_decay ** d:.3g}" for d, b in enumerate(self.blocks))
            parts.append(f"learning rate {rates}")
        parts.append("BatchNorm training" if self.train_batchnorm else "BatchNorm in inference mode")
        return "; ".join(parts)


class BlockRateAdam(keras.optimizers.Adam):
    """Adam whose step for each variable is scaled by its block's factor (discriminative learning rates).

    Scaling gradients would not do: Adam's step does not depend on the
    gradient's scale. The factor multiplies the learning rate instead, per
    variable, at the index the optimizer gives the variable when built.
    """

    def __init__(self, factors: dict[int, float], learning_rate, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self._factors_by_id = factors
        self._factors: list[float] = []

    def build(self, variables):
        if self.built:  # as Adam: a later build (e.g. by a loss-scale wrapper) keeps the first variable list
            return
        super().build(variables)
        self._factors = [self._factors_by_id.get(id(v), 1.0) for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        factor = self._factors[self._get_variable_index(variable)]
        super().update_step(gradient, variable, learning_rate if factor == 1.0 else learning_rate * factor)


class GradualUnfreezing(keras.callbacks.Callback):
    """At each epoch's start, unfreeze the blocks `unfreezing` says, retracing the training step when they change."""

    def __init__(self, unfreezing: Unfreezing, current: str):
        super().__init__()
        self.unfreezing, self.current = unfreezing, current

    def on_epoch_begin(self, epoch, logs=None):
        block = self.unfreezing.block_at(epoch)
        if block != self.current:
            self.unfreezing.apply(block)
            self.current = block
            self.model.make_train_function(force=True)  # the trainable variables are read when traced
            console.info(f"Fine-tune epoch {epoch + 1}: training from {block} on.")
