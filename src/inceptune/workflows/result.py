"""What `train` returns and says when it is done, for both recipes; where a run writes without --out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from inceptune import console


@dataclass
class TrainResult:
    run: Path
    metrics: dict


def default_out(data: str, command: str | None = None) -> str:
    """Where a run writes without --out: runs/NAME-TIME for train, runs/COMMAND-NAME-TIME for cv, tune and
    audit (NAME: the data's folder or file name)."""
    prefix = f"{command}-" if command else ""
    return str(Path("runs") / f"{prefix}{Path(data).resolve().name}-{datetime.now():%Y%m%d-%H%M%S}")


def say_results(run: Path, metrics: dict) -> None:
    """Each held-out accuracy with its 95% interval, next to the logistic-regression baseline's."""
    from inceptune.evaluation.intervals import accuracy_interval

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
    held = (metrics.get("sets") or {}).get("test")
    if held:
        low, high = held["coverage_ci95"]
        console.info(f"test: prediction sets ({held['coverage_target']:.0%} asked) hold the true class for "
                     f"{held['coverage']:.1%} (95% CI {low:.1%}-{high:.1%}), mean size {held['mean_size']:.2f}")
    console.info(f"Saved the model, report.html and plots in {run}/")


def recipe_rows(metrics: dict) -> list[tuple[str, str]]:
    """How the recipe was chosen and on which split, in words, for report.html."""
    rows = []
    search, refit, baseline = metrics.get("search"), metrics.get("refit"), metrics.get("baseline") or {}
    if search:
        from inceptune.search.choose import describe

        rows.append(("recipe", describe(search["recipe"])))
        rows.append(("chosen by", f"search {search['mode']}, on {search['chosen_on']}; {len(search['tried'])} "
                                  f"recipes in {search['seconds']:.1f}s"
                                  + (f" (stopped: {search['stopped']})" if search.get("stopped") else "")))
        ours = "not scored" if search["cv_accuracy"] is None else f"{search['cv_accuracy']:.4f}"
        rows.append(("CV accuracy", f"{ours}; logistic regression on mixed10: {search['baseline']['cv_accuracy']:.4f}"))
        d = search.get("departure")
        if d:
            rows.append(("departure test", f"{d['test']}: t {d['t']} against {d['critical']} -> "
                                           + ("adopted" if d["adopted"] else "kept the start")))
    if refit:
        rows.append(("refit", f"on {refit['on']} ({refit['images']} images), fine-tuning {refit['fine_tune_epochs']} "
                              "epochs; val figures are the fit on train alone (held out), test is the refit's"))
    for split in ("val", "test"):
        if split in baseline and metrics.get(split):
            rows.append((f"{split} accuracy", f"{metrics[split]['accuracy']:.4f}; logistic regression on mixed10 "
                                              f"(fit on {baseline[split]['fit_on']}): "
                                              f"{baseline[split]['accuracy']:.4f}"))
    return rows
