"""The `inceptune` command: parses arguments and delegates to the Python API.

User errors print one sentence and exit 2; an interrupted run exits 130
and keeps what is done (the feature cache). Bugs raise with a traceback.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

import inceptune  # sets TensorFlow's logging defaults before anything imports it
from inceptune import console
from inceptune.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Transfer learning with Inception-v3: train, predict, evaluate.")

WeightsOpt = Annotated[str, typer.Option(
    "--weights", help="imagenet (Keras' file, or the file named by INCEPTUNE_WEIGHTS), none, or a PATH to a weights file.")]


@app.callback()
def _global(quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only results and errors.")] = False) -> None:
    console.set_quiet(quiet)


@app.command()
def train(
    data: Annotated[str, typer.Argument(help="Folder of class subfolders, or of train/ (val/, test/) folders.")],
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Run folder to write (default runs/DATA-TIME).")] = None,
    weights: WeightsOpt = "imagenet",
    image_size: Annotated[int, typer.Option(help="Images are resized to this square (75 or more).")] = 299,
    val_split: Annotated[float, typer.Option(help="Fraction of each class for validation when there is no val/ folder.")] = 0.2,
    test_split: Annotated[float, typer.Option(help="Fraction of each class held out for testing when there is no test/ folder.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Fixes splits and initialisation.")] = 1337,
    epochs: Annotated[int, typer.Option(help="Phase 1 epochs (head on cached features).")] = 20,
    learning_rate: Annotated[float, typer.Option("--lr", help="Phase 1 learning rate.")] = 1e-3,
    batch_size: Annotated[int, typer.Option(help="Batch size for extraction and training.")] = 32,
    dropout: Annotated[float, typer.Option(help="Dropout before the head's Dense layer.")] = 0.2,
    head_units: Annotated[Optional[list[int]], typer.Option("--head-units", help="Hidden Dense layer size (repeatable), e.g. 1024.")] = None,
    unfreeze_from: Annotated[str, typer.Option(help="First block to fine-tune in phase 2 (mixed0..mixed10).")] = "mixed9",
    fine_tune_epochs: Annotated[int, typer.Option(help="Phase 2 epochs; 0 skips fine-tuning.")] = 10,
    fine_tune_lr: Annotated[float, typer.Option(help="Phase 2 learning rate.")] = 1e-5,
    patience: Annotated[int, typer.Option(help="Phase 2 early-stopping patience (epochs without a lower val loss).")] = 3,
    cache_dir: Annotated[Optional[str], typer.Option(help="Feature cache folder (default $INCEPTUNE_CACHE or ~/.cache/inceptune/features).")] = None,
    max_pixels: Annotated[int, typer.Option(help="Skip images with more pixels than this.")] = 100_000_000,
    overwrite: Annotated[bool, typer.Option(help="Replace a finished run in --out.")] = False,
) -> None:
    """Train a classifier: cached features, the head, then fine-tuning of the top blocks."""
    settings = {k: v for k, v in locals().items() if k != "data"}
    settings["head_units"] = tuple(head_units or ())
    inceptune.train(data, **settings)


@app.command()
def predict(
    model: Annotated[str, typer.Argument(help="A run folder, or 'imagenet' for ImageNet's 1000 classes.")],
    inputs: Annotated[list[str], typer.Argument(help="Image files and/or folders.")],
    top: Annotated[int, typer.Option("--top", "-k", help="Classes to show per image.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
    weights: WeightsOpt = "imagenet",
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 32,
) -> None:
    """Rank classes for images with a trained run, or with ImageNet's classifier."""
    if model == "imagenet" and not Path("imagenet").is_dir():
        results = inceptune.predict_imagenet(inputs, top=top, weights=weights, batch_size=batch_size)
    else:
        results = inceptune.predict(model, inputs, top=top, batch_size=batch_size)
    _print_predictions(results, as_json, as_csv)
    if all("error" in r for r in results):
        raise UserError("None of the images could be read.")


@app.command()
def evaluate(
    run: Annotated[str, typer.Argument(help="A run folder.")],
    data: Annotated[Optional[str], typer.Argument(help="Folder of the same classes (default: the run's test split).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Metrics of a run on its held-out test split or on another labelled folder."""
    metrics = inceptune.evaluate(run, data)
    if as_json:
        print(json.dumps(metrics, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"{metrics['source']}: {metrics['images']} images")
    for col in ("class", "precision", "recall", "f1-score", "support"):
        table.add_column(col, justify="right" if col != "class" else "left")
    for name, row in [*metrics["per_class"].items(), ("macro avg", metrics["macro_avg"])]:
        table.add_row(name, *(f"{row[k]:.3f}" for k in ("precision", "recall", "f1-score")), f"{row['support']:.0f}")
    console.console.print(table)
    print(f"accuracy {metrics['accuracy']:.4f}  balanced accuracy {metrics['balanced_accuracy']:.4f}  "
          f"log loss {metrics['log_loss']:.4f}")


@app.command()
def demo(
    out: Annotated[str, typer.Option("--out", "-o", help="Where the demo writes its data and run.")] = "runs/demo",
    weights: WeightsOpt = "imagenet",
) -> None:
    """Generate a small dataset, train on it, evaluate and predict: the whole workflow in a minute or two."""
    inceptune.demo(out=out, weights=weights)


def _print_predictions(results: list[dict], as_json: bool, as_csv: bool) -> None:
    if as_json:
        print(json.dumps(results, indent=2))
    elif as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["path", "rank", "label", "probability", "error"])
        for r in results:
            if "error" in r:
                writer.writerow([r["path"], "", "", "", r["error"]])
            for rank, t in enumerate(r.get("top", []), 1):
                writer.writerow([r["path"], rank, t["label"], f"{t['probability']:.6f}", ""])
    else:
        for r in results:
            if "error" in r:
                print(f"{r['path']}: skipped ({r['error']})")
                continue
            ranked = ", ".join(f"{t['label']} {t['probability']:.3f}" for t in r["top"])
            print(f"{r['path']}: {ranked}")


def main() -> None:
    try:
        app()
    except UserError as exc:
        console.console.print(f"error: {exc}", style="bold red", markup=False, highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.console.print("interrupted: finished work is kept (features in the cache); rerun to continue.",
                              style="yellow", markup=False)
        sys.exit(130)
