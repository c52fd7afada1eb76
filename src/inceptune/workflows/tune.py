"""`tune`: an Optuna study of recipes on the cached features of train + val, resumable from its folder.

    settings (checked) -> the dataset and its splits (as train makes them; the test split is never read)
          -> one backbone pass over train + val for every feature source (cached, shared with train)
          -> the study (search/study.py) in OUT/study.db: seeded TPE, median pruner
          -> OUT/tune.json (every trial), OUT/best.json (`train --config best.json` fits the best recipe),
             OUT/history.png and OUT/importance.png (Optuna's matplotlib plots)

A study killed mid-way and started again with the same OUT continues: no finished trial is lost.
"""

from __future__ import annotations

import inspect
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from inceptune import console
from inceptune.atomic import atomic_write_json
from inceptune.data.dataset import Dataset
from inceptune.errors import UserError
from inceptune.search.choose import describe, recipe_candidate
from inceptune.search.space import SEARCHED, baseline_candidate
from inceptune.settings import Settings, documented, resolve
from inceptune.runs import versions
from inceptune.workflows.result import default_out

_DATA = inspect.Parameter("data", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
_CONFIG = inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None)


@dataclass
class TuneResult:
    path: Path  # the study folder
    best: dict  # the best recipe's settings
    cv_accuracy: float
    baseline_accuracy: float | None
    trials: int  # finished (complete or pruned)


@documented("tune", [_DATA, _CONFIG])
def tune(data=None, *, config=None, **settings) -> TuneResult:
    """Search the recipe on the cached features with Optuna; `train --config OUT/best.json` fits the best.

    Examples:
        >>> result = inceptune.tune("photos/", trials=50, out="runs/tune-photos")
        >>> result.best["feature_block"], result.cv_accuracy
        >>> inceptune.train(config="runs/tune-photos/best.json")
    """
    s = resolve("tune", {**settings, **({"data": data} if data is not None else {})}, config)
    return _tune(s)


def _tune(s: Settings) -> TuneResult:
    from inceptune.search.scoring import SearchData
    from inceptune.search.study import finished, run_study
    from inceptune.workflows.prepare import prepare

    start = time.perf_counter()
    # every image, as train extracts them: train + val here is train's, near-duplicates grouped alike
    # (without fine-tuning: the study scores heads on pooled features, so no phase-2 activations are cached)
    prepared = prepare(s.replace(fine_tune_epochs=0), on_data=lambda dataset: _open(s, dataset))
    out, dataset, cache = prepared.out, prepared.dataset, prepared.cache
    records = dataset.split("train") + dataset.split("val")
    data = SearchData.of(records, dataset.label_index, dataset.classes, cache, s.study.search_folds, s.data.seed)
    base = recipe_candidate(s)
    fixed = {k: base[k] for k in SEARCHED if k in s.given}
    console.info(f"Scoring by stratified {data.fold_count}-fold CV on train + val ({len(records)} images); the test "
                 f"split ({len(dataset.split('test'))} images) is not read.")
    study = run_study(data, base, fixed, s.study.trials, s.study.timeout, s.data.seed,
                      storage=f"sqlite:///{(out / 'study.db').resolve()}",
                      start_from={k: v for k, v in baseline_candidate().items() if k not in fixed},
                      on_trial=lambda study, trial: _write_trials(out, study, data.fold_count))
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not complete:
        raise UserError(f"No trial of the study in {out} finished; give it more --trials or a longer --timeout.")
    best = study.best_trial
    recipe = {k: v for k, v in best.user_attrs["recipe"].items() if k in SEARCHED}
    baseline = next((t.value for t in complete if _is_baseline(t.user_attrs["recipe"])), None)
    _write_trials(out, study, data.fold_count)
    atomic_write_json(out / "best.json", {
        **s.replace(**{k: tuple(v) if isinstance(v, list) else v for k, v in recipe.items()},
                    search="none").as_dict(("data", "recipe")),
        "resolved": {"cv_accuracy": best.value, "cv_log_loss": best.user_attrs["log_loss"], "trial": best.number,
                     "folds": data.fold_count, "images": len(records), "study": str(out / "study.db"),
                     "baseline_cv_accuracy": baseline, "seconds": round(time.perf_counter() - start, 3)},
        "versions": versions()})
    _plots(study, out)
    console.info(f"Best of {finished(study)} trials: {describe({**base, **best.user_attrs['recipe']})}; CV accuracy "
                 f"{best.value:.4f}" + (f" against {baseline:.4f} for logistic regression on mixed10" if baseline
                                        is not None else "") + f". Train it: inceptune train --config {out}/best.json")
    return TuneResult(out, recipe, best.value, baseline, finished(study))


def _open(s: Settings, dataset: Dataset) -> Path:
    """Once the data is read: a single-label dataset, then the study folder."""
    if dataset.multilabel:
        raise UserError("tune covers single-label tasks; a multi-label CSV trains with its settings as given.")
    out = Path(s.run.out or default_out(s.data.data, "tune"))
    out.mkdir(parents=True, exist_ok=True)
    console.info(f"Study folder: {out} (run the same command again to continue it)")
    return out


def _is_baseline(recipe: dict) -> bool:
    return all(recipe.get(k) == v for k, v in baseline_candidate().items())


def _write_trials(out: Path, study, folds: int) -> None:
    """tune.json: every trial so far (rewritten after each, so a kill loses none of it)."""
    trials = [{"number": t.number, "state": t.state.name.lower(), "cv_accuracy": t.value,
               "cv_log_loss": t.user_attrs.get("log_loss"), "per_fold": t.user_attrs.get("per_fold"),
               "recipe": t.user_attrs.get("recipe"), "params": t.params,
               "seconds": t.duration.total_seconds() if t.duration else None} for t in study.trials]
    atomic_write_json(out / "tune.json", {"folds": folds, "objective": "mean CV accuracy (maximised)",
                                          "trials": trials})


def _plots(study, out: Path) -> None:
    """Optuna's optimisation history and parameter importances (its matplotlib backend), as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    for name, plot in (("history.png", ovm.plot_optimization_history), ("importance.png", ovm.plot_param_importances)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                axes = plot(study)
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            figure.set_size_inches(8, 5)
            figure.tight_layout()
            figure.savefig(out / name, dpi=100)
            plt.close(figure)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # too few trials to say anything
            console.info(f"No {name}: {exc}")
