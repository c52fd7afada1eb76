"""Learning-rate schedules for either phase: constant, cosine or step decay, each with an optional linear warm-up.

    constant  the rate throughout
    cosine    from the rate down to 0 along half a cosine (Loshchilov & Hutter's SGDR, one cycle)
    step      the rate, then a tenth of it from half-way, a hundredth from three quarters

A warm-up of W epochs (at most the phase's epochs minus one) ramps linearly
from a tenth of the rate to the rate first; the decay then runs over the
remaining epochs. The schedule is a
function of the optimizer's step count, which a resumed run restores.
"""

from __future__ import annotations

import keras

from inceptune.settings.schema import SCHEDULES


class Schedule(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, rate: float, kind: str, total_steps: int, warmup_steps: int = 0):
        self.rate, self.kind = float(rate), kind
        self.total, self.warmup = max(1, int(total_steps)), max(0, int(warmup_steps))

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        warm = float(self.warmup)
        ramp = self.rate * (0.1 + 0.9 * ops.minimum(step / max(warm, 1.0), 1.0))
        progress = ops.clip((step - warm) / max(float(self.total) - warm, 1.0), 0.0, 1.0)
        if self.kind == "cosine":
            decayed = self.rate * 0.5 * (1.0 + ops.cos(3.141592653589793 * progress))
        elif self.kind == "step":
            decayed = ops.where(progress < 0.5, self.rate, ops.where(progress < 0.75, self.rate * 0.1, self.rate * 0.01))
        else:
            decayed = ops.convert_to_tensor(self.rate)
        return ops.where(step < warm, ramp, decayed)

    def get_config(self):
        return {"rate": self.rate, "kind": self.kind, "total_steps": self.total, "warmup_steps": self.warmup}


def learning_rate(rate: float, kind: str, epochs: int, steps_per_epoch: int, warmup_epochs: int = 0):
    """A float for a constant rate without warm-up, else a Schedule."""
    if kind not in SCHEDULES:  # a bug: settings checked it
        raise ValueError(f"unknown schedule {kind!r}")
    warmup_epochs = min(warmup_epochs, max(0, epochs - 1))
    if kind == "constant" and not warmup_epochs:
        return rate
    return Schedule(rate, kind, epochs * steps_per_epoch, warmup_epochs * steps_per_epoch)
