"""`train --resume`: what a run leaves in RUN/checkpoint/ after every finished epoch, and how it comes back.

After each epoch of either phase, in this order, each by temp-and-rename:
the training model's weights, the optimizer's variables, the best weights
so far, then `state.json` (phase, epochs done, their history rows, the best
loss and its epoch, early-stopping counters, the settings). `state.json`
only ever names complete files, so a run killed at any instant (SIGKILL
included) resumes from its last finished epoch and redoes none of them.
Features are in the cache already, so a resumed run goes straight to the
epoch where it stopped. The folder is removed when the run finishes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np

from inceptune.atomic import atomic_path, atomic_write_json
from inceptune.errors import UserError
from inceptune.models.classifier import refresh_normalization
from inceptune.settings import Settings

# Settings that may differ between the interrupted run and its resumption.
FREE = ("resume", "overwrite", "out", "cache_dir", "tensorboard", "track", "tracking_uri")


class Checkpoint:
    def __init__(self, run_path: Path, settings: Settings):
        self.dir = Path(run_path) / "checkpoint"
        self.settings = {k: v for group in settings.as_dict().values() for k, v in group.items() if k not in FREE}

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def load(self) -> dict | None:
        """The saved state of an interrupted run with the same settings, or None."""
        path = self.dir / "state.json"
        if not path.is_file():
            return None
        state = json.loads(path.read_text())
        changed = sorted(k for k in set(state["settings"]) | set(self.settings)
                         if state["settings"].get(k) != self.settings.get(k))
        if changed:
            k = changed[0]
            raise UserError(f"The interrupted run was started with other settings ({k} {state['settings'].get(k)!r}, "
                            f"now {self.settings.get(k)!r}); resume with the same settings or start a new --out.")
        return state

    def save(self, phase: str, epochs_done: int, rows: list[dict], model: keras.Model, best: dict,
             best_weights: list, stop: dict | None, earlier_rows: list[dict]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        _save_arrays(self.dir / f"{phase}-weights.npz", model.get_weights())
        _save_arrays(self.dir / f"{phase}-optimizer.npz", [v.numpy() for v in model.optimizer.variables])
        _save_arrays(self.dir / f"{phase}-best.npz", best_weights)
        atomic_write_json(self.dir / "state.json", {
            "phase": phase, "epochs_done": epochs_done, "rows": rows, "earlier_rows": earlier_rows,
            "best": best, "stop": stop, "settings": self.settings})

    def restore(self, phase: str, model: keras.Model) -> list:
        """Put the training model and its optimizer back as they were; returns the best weights so far."""
        model.set_weights(_load_arrays(self.dir / f"{phase}-weights.npz"))
        refresh_normalization(model)
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        for variable, value in zip(model.optimizer.variables, _load_arrays(self.dir / f"{phase}-optimizer.npz")):
            variable.assign(value)
        return _load_arrays(self.dir / f"{phase}-best.npz")


def _save_arrays(path: Path, arrays: list) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, *[np.asarray(a) for a in arrays])


def _load_arrays(path: Path) -> list:
    with np.load(path, allow_pickle=False) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]
