"""Experiment tracking where users already look: MLflow.

TensorBoard needs nothing here: `train` writes its logs to RUN/tensorboard.
`--track mlflow` logs a finished run folder to an MLflow tracking server or
store: every setting as a parameter, the per-epoch history as metric steps,
the final metrics, the plots and report as artifacts, and model.keras.
The URI defaults to MLflow's own default (MLFLOW_TRACKING_URI, else a local
`mlflow.db` beside `mlruns/` in the current folder, what `mlflow ui` reads).
"""

from __future__ import annotations

import csv
import json

from inceptune import console
from inceptune.errors import UserError
from inceptune.runs import RunFolder

EXPERIMENT = "inceptune"
_ARTIFACTS = ("report.html", "metrics.json", "evaluation.json", "config.json", "labels.json", "history.csv",
              "predictions.csv", "manifest.csv", "dataset.json")


def check_tracker(tracker: str) -> None:
    """Raise the one sentence that says what to install when `tracker`'s package is missing."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise UserError(f"--track {tracker} needs MLflow: pip install 'inceptune[mlflow]'.") from None


def log_run(run: RunFolder, tracker: str, uri: str | None = None) -> str:
    """Log a finished run folder; returns the tracker's run id."""
    check_tracker(tracker)
    import mlflow
    if uri:
        mlflow.set_tracking_uri(uri)
    try:
        mlflow.set_experiment(EXPERIMENT)
        with mlflow.start_run(run_name=run.path.name) as active:
            config = run.config
            settings = {k: v for group, values in config.items() if group not in ("versions", "resolved")
                        for k, v in values.items()}
            mlflow.log_params({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in settings.items()})
            mlflow.set_tags({f"version.{k}": v for k, v in config.get("versions", {}).items()})
            for step, row in enumerate(_history(run), 1):  # the numeric columns (not e.g. unfrozen_from)
                numbers = {k: _number(v) for k, v in row.items() if k not in ("phase", "epoch", "kept")}
                mlflow.log_metrics({f"{row['phase']}.{k}": v for k, v in numbers.items() if v is not None},
                                   step=step)
            mlflow.log_metrics(_final_metrics(run))
            for name in _ARTIFACTS:
                if run.file(name).is_file():
                    mlflow.log_artifact(str(run.file(name)))
            for png in sorted(run.path.glob("*.png")):
                mlflow.log_artifact(str(png), artifact_path="plots")
            mlflow.log_artifact(str(run.model_path), artifact_path="model")
    except mlflow.exceptions.MlflowException as exc:
        raise UserError(f"MLflow could not log the run to {mlflow.get_tracking_uri()}: {exc.message}") from None
    console.info(f"Logged to MLflow ({mlflow.get_tracking_uri()}), experiment '{EXPERIMENT}', run "
                 f"{active.info.run_id}.")
    return active.info.run_id


def _history(run: RunFolder) -> list[dict]:
    if not run.file("history.csv").is_file():
        return []
    with open(run.file("history.csv"), newline="") as f:
        return list(csv.DictReader(f))


def _final_metrics(run: RunFolder) -> dict[str, float]:
    out = {}
    if run.file("metrics.json").is_file():
        for split in ("val", "test"):
            for k, v in (run.read_json("metrics.json").get(split) or {}).items():
                out[f"{split}.{k}"] = float(v)
    if run.file("evaluation.json").is_file():
        for k, v in run.read_json("evaluation.json").items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[f"report.{k}"] = float(v)
    return out


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
