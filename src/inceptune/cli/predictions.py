"""predict, evaluate and explain: what a model says about images, printed as text, JSON or CSV."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

import inceptune
from inceptune import console
from inceptune.cli.options import BatchOpt, CoverageOpt, RayAddressOpt, RuntimeOpt, TtaOpt, UnsafeOpt, WeightsOpt
from inceptune.errors import UserError
from inceptune.inference.runtimes import DEFAULT_RUNTIME
from inceptune.settings import DEFAULTS


def predict(
    model: Annotated[str, typer.Argument(help="A run folder, a fit-features model folder, or 'imagenet' for ImageNet's 1000 classes.")],
    inputs: Annotated[list[str], typer.Argument(help="Image files and/or folders.")],
    top: Annotated[int, typer.Option("--top", "-k", help="Classes to show per image.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
    weights: WeightsOpt = DEFAULTS["weights"],
    batch_size: BatchOpt = DEFAULTS["batch_size"],
    tta: TtaOpt = 1,
    unsafe: UnsafeOpt = False,
    runtime: RuntimeOpt = DEFAULT_RUNTIME,
    engine: Annotated[str, typer.Option(help="local, or ray (Ray Data with a pool of model actors) for a run folder.")] = "local",
    ray_address: RayAddressOpt = None,
    coverage: CoverageOpt = None,
) -> None:
    """Rank classes for images with a trained run, or with ImageNet's classifier."""
    results = inceptune.predict(model, inputs, top=top, batch_size=batch_size, tta=tta, unsafe=unsafe, runtime=runtime,
                                weights=weights, engine=engine, ray_address=ray_address, coverage=coverage)
    _print_predictions(results, as_json, as_csv)
    if all("error" in r for r in results):
        raise UserError("None of the images could be read.")


def evaluate(
    run: Annotated[str, typer.Argument(help="A run folder.")],
    data: Annotated[Optional[str], typer.Argument(help="Folder of the same classes (default: the run's test split).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    tta: TtaOpt = 1,
    batch_size: BatchOpt = DEFAULTS["batch_size"],
    unsafe: UnsafeOpt = False,
    runtime: RuntimeOpt = DEFAULT_RUNTIME,
    coverage: CoverageOpt = None,
) -> None:
    """Metrics, plots and report.html of a run on its held-out test split or on another labelled folder."""
    metrics = inceptune.evaluate(run, data, batch_size=batch_size, tta=tta, unsafe=unsafe, runtime=runtime,
                                 coverage=coverage)
    if as_json:
        print(json.dumps(metrics, indent=2))
        return
    from rich.table import Table

    from inceptune.evaluation.metrics import SCALARS

    table = Table(title=f"{metrics['source']}: {metrics['images']} images")
    for col in ("class", "precision", "recall", "f1", "ROC AUC", "support"):
        table.add_column(col, justify="right" if col != "class" else "left")
    for name, row in [*metrics["per_class"].items(), ("macro avg", {**metrics["macro_avg"], "roc_auc": None})]:
        table.add_row(name, *(_fmt(row[k]) for k in ("precision", "recall", "f1", "roc_auc")), str(row["support"]))
    console.console.print(table)
    intervals = metrics.get("ci95") or {}
    print(f"{'metric':<18} value   [95% interval]")
    for name in SCALARS:
        ci = intervals.get(name)
        print(f"{name:<18} {_fmt(metrics[name])}" + (f"  [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""))
    sets = metrics.get("sets")
    if sets:
        low, high = sets["coverage_ci95"]
        size = sets["mean_size_ci95"]
        print(f"prediction sets ({sets['coverage_target']:.0%} asked, {sets['score']} score): the true class in "
              f"{sets['coverage']:.1%} of the sets [{low:.1%}, {high:.1%}], mean size {sets['mean_size']:.2f}"
              + (f" [{size[0]:.2f}, {size[1]:.2f}]" if size else ""))
    print(f"plots and report.html: {Path(metrics.get('report', run))}")


def explain(
    run: Annotated[str, typer.Argument(help="A run folder.")],
    inputs: Annotated[list[str], typer.Argument(help="Image files and/or folders.")],
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Folder for the overlays (default RUN/explain).")] = None,
    block: Annotated[str, typer.Option(help="Inception block whose output the heatmap shows (mixed0..mixed10).")] = "mixed10",
    class_name: Annotated[Optional[str], typer.Option("--class", help="Explain this class (default: the predicted one).")] = None,
    unsafe: UnsafeOpt = False,
) -> None:
    """Grad-CAM heatmaps: where the model looked, saved as overlays."""
    results = inceptune.explain(run, inputs, out=out, block=block, class_name=class_name, unsafe=unsafe)
    for r in results:
        print(f"{r['path']}: skipped ({r['error']})" if "error" in r else
              f"{r['path']}: {r['class']} {r['probability']:.3f} -> {r['overlay']}")
    if all("error" in r for r in results):
        raise UserError("None of the images could be read.")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


UNKNOWN = "none of these"  # what every output says for an image unlike the run's training photos


def _print_predictions(results: list[dict], as_json: bool, as_csv: bool) -> None:
    """Each image's answer: its verdict ("none of these" when the OOD score is above the run's threshold, a
    multi-label run's labels at their thresholds, else the prediction set: "roses or tulips") first, then the
    ranked classes, in text, JSON or CSV alike."""
    if as_json:
        print(json.dumps(results, indent=2))
    elif as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["path", "rank", "label", "probability", "unknown", "ood_score", "labels", "set", "error"])
        for r in results:
            if "error" in r:
                writer.writerow([r["path"], "", "", "", "", "", "", "", r["error"]])
            verdict = ["" if "unknown" not in r else str(r["unknown"]).lower(),
                       "" if "ood_score" not in r else f"{r['ood_score']:.6f}", ";".join(r.get("labels", [])),
                       ";".join(r.get("set", []))]
            for rank, t in enumerate(r.get("top", []), 1):
                writer.writerow([r["path"], rank, t["label"], f"{t['probability']:.6f}", *verdict, ""])
    else:
        for r in results:
            if "error" in r:
                print(f"{r['path']}: skipped ({r['error']})")
                continue
            ranked = ", ".join(f"{t['label']} {t['probability']:.3f}" for t in r["top"])
            if r.get("unknown"):
                print(f"{r['path']}: {UNKNOWN} (OOD score {r['ood_score']:.3f} above the threshold); "
                      f"closest: {ranked}")
            elif "labels" in r:
                print(f"{r['path']}: labels {', '.join(r['labels']) or '(none at their thresholds)'}; {ranked}")
            elif "set" in r:
                print(f"{r['path']}: {' or '.join(r['set'])}; {ranked}")
            else:
                print(f"{r['path']}: {ranked}")
