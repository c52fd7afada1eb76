"""What `train` returns and says when it is done, for both recipes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from inceptune import console


@dataclass
class TrainResult:
    run: Path
    metrics: dict


def default_out(data: str) -> str:
    return str(Path("runs") / f"{Path(data).resolve().name}-{datetime.now():%Y%m%d-%H%M%S}")


def say_results(run: Path, metrics: dict) -> None:
    for split in ("val", "test"):
        m = metrics.get(split)
        if m:
            console.info(f"{split}: accuracy {m['accuracy']:.4f}, loss {m['loss']:.4f} ({m['images']} images)")
    console.info(f"Saved the model, report.html and plots in {run}/")
