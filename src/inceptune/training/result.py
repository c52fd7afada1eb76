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
    """Each held-out accuracy with its 95% interval, next to the logistic-regression baseline's."""
    from inceptune.evaluation.metrics import accuracy_interval

    baseline = metrics.get("baseline") or {}
    for split in ("val", "test"):
        m = metrics.get(split)
        if m:
            low, high = accuracy_interval(m["accuracy"], m["images"])
            line = (f"{split}: accuracy {m['accuracy']:.4f} (95% CI {low:.3f}-{high:.3f}), loss {m['loss']:.4f} "
                    f"({m['images']} images)")
            if split in baseline:
                line += f"; logistic regression on mixed10 features: {baseline[split]['accuracy']:.4f}"
            console.info(line)
    console.info(f"Saved the model, report.html and plots in {run}/")
