"""train, cv, tune and lr-find: the recipe's commands, their options made from the settings table."""

from __future__ import annotations

import json

import inceptune
from inceptune.cli.settings_commands import json_flag, settings_command

train = settings_command(
    "train", lambda data, **kw: inceptune.train(data, **kw),
    "Train a classifier: cached features, the head, then fine-tuning of the top blocks; writes "
    "report.html. With --arch, a network from scratch instead.")


def _show_cv(result, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.record, indent=2))
        return
    print(f"{'metric':<18} mean ± std       [95% interval of the mean]")
    for name, s in result.summary.items():
        ci = s.get("ci95")
        print(f"{name:<18} {s['mean']:.4f} ± {s['std']:.4f}" + (f"  [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""))
    print(f"out-of-fold predictions: {result.path / 'predictions.csv'}")


cv = settings_command(
    "cv", lambda data, **kw: inceptune.cross_validate(data, **kw),
    "Stratified k-fold cross-validation of the whole train recipe, reusing cached features across "
    "folds; keeps every image's out-of-fold probabilities.",
    helps={"out": "Folder for cv.json, predictions.csv and report.html (default runs/cv-DATA-TIME)."},
    extra=[json_flag("Print cv.json.")], show=_show_cv)

tune = settings_command(
    "tune", lambda data, **kw: inceptune.tune(data, **kw),
    "Search the recipe (feature block, pooling, head and its settings) with Optuna on cached "
    "features, by k-fold CV on train + val; writes tune.json, best.json (train --config best.json "
    "fits it) and plots. Run it again with the same --out to continue a study.",
    helps={"out": "Study folder: study.db, tune.json, best.json, plots (default runs/tune-DATA-TIME)."})


def _show_lr(finding) -> None:
    low, high = finding.fastest_range
    print(f"suggested learning rate {finding.suggestion:.3g} (fastest fall between {low:.3g} and {high:.3g}); "
          f"plot {finding.plot}")


lr_find = settings_command(
    "lr_find", lambda data, **kw: inceptune.lr_find(data, **kw),
    "Learning-rate range test: loss against a growing learning rate, a plot, and a suggested value.",
    show=_show_lr)
