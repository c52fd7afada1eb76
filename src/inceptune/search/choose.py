"""`train --search quick|full|none`: choose the recipe on the cached features of train + val.

    none   the settings as given, scored once (its CV score is still recorded)
    quick  a fixed order of candidates (search/space.py), every one tried: what it tries depends on the
           data (its classes, their balance, the settings given), never on the clock. --timeout, when given,
           is a safety net: the search stops starting candidates after it, and its record and summary say so
    full   an Optuna study (search/study.py) of --trials, heads included

Every mode also scores the plain logistic regression on mixed10's average-pooled features on the same folds
(the baseline the chosen recipe is compared with), and the search starts from it, so it is never chosen
over a recipe that beats it, and nothing below it is chosen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from inceptune import console
from inceptune.search.heads import Score
from inceptune.search.scoring import SearchData, score
from inceptune.search.space import (IMBALANCE, SEARCHED, baseline_candidate, quick_concatenations,
                                    quick_refinements, quick_sources)
from inceptune.settings import Settings
from inceptune.settings.resolve import timeout_seconds

SIGNIFICANCE = 0.05  # one-sided level of the test a departure from the starting recipe must pass
REPEATS = 3  # of the k-fold CV in that test: the search's folds, then folds cut by other seeds


@dataclass
class Tried:
    candidate: dict
    score: Score | None
    seconds: float

    def as_dict(self) -> dict:
        return {"recipe": {k: list(v) if isinstance(v, tuple) else v for k, v in self.candidate.items()},
                **(self.score.as_dict() if self.score is not None else {}), "seconds": round(self.seconds, 3)}


@dataclass
class Choice:
    mode: str
    candidate: dict  # the chosen recipe settings
    score: Score | None  # None: a dense head with --search none (not scored)
    baseline: Score
    folds: int
    seconds: float = 0.0
    tried: list[Tried] = field(default_factory=list)
    departure: dict | None = None  # the test the best recipe had to pass to replace the starting one
    stopped: str | None = None  # why a quick search stopped before its last candidate (--timeout), in words

    def apply(self, s: Settings) -> Settings:
        """The settings with the chosen recipe (and search none: replaying them needs no search)."""
        changes = {k: tuple(v) if isinstance(v, list) else v for k, v in self.candidate.items() if k in SEARCHED}
        return s.replace(**changes, search="none")

    def record(self, images: int) -> dict:
        scored = self.score is not None
        return {"mode": self.mode, "chosen_on": f"train + val ({images} images), stratified {self.folds}-fold CV",
                "recipe": {k: list(v) if isinstance(v, tuple) else v for k, v in self.candidate.items()},
                "cv_accuracy": round(self.score.accuracy, 6) if scored else None,
                "cv_log_loss": round(self.score.log_loss, 6) if scored else None,
                **({} if scored else {"not_scored": "a dense head's CV score comes from --search full or tune"}),
                "baseline": {"recipe": "logistic regression (C=1) on mixed10 average-pooled features",
                             "cv_accuracy": round(self.baseline.accuracy, 6),
                             "cv_log_loss": round(self.baseline.log_loss, 6)},
                "departure": self.departure, "seconds": round(self.seconds, 3), "stopped": self.stopped,
                "tried": [t.as_dict() for t in self.tried]}


def recipe_candidate(s: Settings) -> dict:
    """The recipe settings the search varies, as the settings hold them."""
    r = s.recipe
    return {"feature_block": r.feature_block, "pooling": r.pooling, "head": r.head, "l2": r.l2,
            "class_weight": r.class_weight, "head_units": tuple(r.head_units), "dropout": r.dropout,
            "learning_rate": r.learning_rate, "epochs": r.epochs, "label_smoothing": r.label_smoothing,
            "weight_decay": r.weight_decay, "batch_size": r.batch_size}


def choose(s: Settings, data: SearchData, mode: str) -> Choice:
    start = time.perf_counter()
    base = recipe_candidate(s)
    fixed = {k: base[k] for k in SEARCHED if k in s.given}
    tried: list[Tried] = []

    def evaluate(candidate: dict) -> Tried:
        for t in tried:
            if t.candidate == candidate:
                return t
        t0 = time.perf_counter()
        t = Tried(candidate, score(candidate, data), time.perf_counter() - t0)
        tried.append(t)
        return t

    baseline = evaluate({**base, **baseline_candidate()})
    departure = stopped = None
    if mode == "none":
        # a linear head is scored in a second; the dense head's folds are Keras fits, left to the searches
        chosen = evaluate(base) if base["head"] == "linear" else Tried(base, None, 0.0)
    elif mode == "quick":
        limit = None if s.study.timeout is None else timeout_seconds(s.study.timeout)
        first, best, left = _quick(base, fixed, data, evaluate, None if limit is None else start + limit)
        if left:
            stopped = (f"--timeout {s.study.timeout} reached with {left} of the quick search's candidates not "
                       f"tried")
            console.warn(f"Search: {stopped}; the choice is the best of those tried.")
        chosen, departure = _departure(first, best, data.fold_count, data)
    else:
        from inceptune.search.study import run_study

        study = run_study(data, base, fixed, s.study.trials, s.study.timeout, s.data.seed, storage=None,
                          start_from=baseline_candidate())
        best = study.best_trial
        chosen = Tried({**base, **best.user_attrs["recipe"]}, Score(best.value, best.user_attrs["log_loss"],
                                                                     best.user_attrs["per_fold"]),
                       best.duration.total_seconds() if best.duration else 0.0)
        tried += [Tried({**base, **t.user_attrs["recipe"]}, Score(t.value, t.user_attrs["log_loss"],
                                                                   t.user_attrs["per_fold"]), 0.0)
                  for t in study.trials if t.state.name == "COMPLETE"]
        chosen, departure = _departure(baseline, chosen, data.fold_count, data)
    choice = Choice(mode, chosen.candidate, chosen.score, baseline.score, data.fold_count,
                    time.perf_counter() - start, tried, departure, stopped)
    if departure is not None and not departure["adopted"]:
        console.info(f"Search: the best of {len(tried)} recipes ({describe(departure['best'])}, CV accuracy "
                     f"{departure['best_accuracy']:.4f}) is not better than the start beyond fold-to-fold noise "
                     f"(corrected paired t {departure['t']:.2f} < {departure['critical']:.2f}); keeping the start.")
    if mode != "none":
        console.info(f"Search ({mode}): {len(tried)} recipe{'s' if len(tried) != 1 else ''} in "
                     f"{choice.seconds:.1f}s; chose {describe(chosen.candidate)}: CV accuracy {chosen.score.accuracy:.4f} against "
                       f"{baseline.score.accuracy:.4f} for logistic regression on mixed10.")
    return choice


def _departure(first: Tried, best: Tried, folds: int, data: SearchData | None = None,
               repeats: int = REPEATS) -> tuple[Tried, dict | None]:
    """Keep the search's starting recipe unless the best one beats it beyond fold-to-fold noise.

    Nadeau and Bengio's corrected resampled t-test on the per-fold accuracy differences, over `repeats`
    k-fold CVs (the search's folds, then folds cut by other seeds, when `data` is given): the training
    sets overlap, so the variance of the mean difference is (1/(k r) + n_test/n_train) s^2, not
    s^2 / (k r). With many candidates within a few images of each other on a small data set, the highest
    score is often noise; the start (the classic features, the plain penalty) is what evidence must move
    us from. The repeats give the test its power when the gain is real.
    """
    if best is first or best.candidate == first.candidate:
        return first, None
    from scipy.stats import t as student

    d = list(np.array(best.score.per_fold) - np.array(first.score.per_fold))
    runs = 1
    if data is not None:
        for r in range(1, repeats):
            again = data.refolded(data.seed + r)
            d += list(np.array(score(best.candidate, again).per_fold) - np.array(score(first.candidate, again).per_fold))
            runs += 1
    d = np.array(d)
    critical = float(student.ppf(1 - SIGNIFICANCE, len(d) - 1))
    spread = float(d.var(ddof=1))
    stat = float(d.mean() / np.sqrt((1 / len(d) + 1 / (folds - 1)) * spread)) if spread > 0 else \
        (np.inf if d.mean() > 0 else 0.0)
    adopted = stat > critical
    return (best if adopted else first), {
        "test": f"corrected resampled paired t-test (Nadeau & Bengio), one-sided, {runs} x {folds}-fold CV",
        "level": SIGNIFICANCE,
        "t": round(stat, 4) if np.isfinite(stat) else "inf", "critical": round(critical, 4), "adopted": adopted,
        "best": best.candidate if not adopted else None, "best_accuracy": best.score.accuracy}


def _quick(base: dict, fixed: dict, data: SearchData, evaluate, deadline: float | None
           ) -> tuple[Tried, Tried, int]:
    """(the starting recipe, the best found, how many candidates --timeout left untried). The candidates
    and their order follow from the data and the settings alone; only an explicit deadline can cut them."""
    head = fixed.get("head", "linear")
    best = first = evaluate({**base, **{k: v for k, v in baseline_candidate().items() if k not in fixed},
                             "head": head})

    def better(t: Tried) -> bool:
        return (t.score.accuracy, -t.score.log_loss) > (best.score.accuracy, -best.score.log_loss)

    def stage(changes: list[dict]) -> int:
        """Try each change on the best so far; returns how many the deadline left untried."""
        nonlocal best
        for i, change in enumerate(changes):
            if deadline is not None and time.perf_counter() >= deadline:
                return len(changes) - i
            t = evaluate({**best.candidate, **change})
            if "feature_block" in change and "pooling" in change:
                by_block[change["feature_block"]] = max(by_block.get(change["feature_block"], 0.0), t.score.accuracy)
            best = t if better(t) else best
        return 0

    by_block: dict[str, float] = {}  # the best CV accuracy of each single block
    left = stage([{"head": head, **change} for change in quick_sources(fixed)])
    if not left:
        ranked = sorted(by_block, key=lambda b: -by_block[b])
        left = stage(list(quick_concatenations(ranked, fixed)))
    if not left:
        left = stage(list(quick_refinements(best.candidate, fixed, _imbalanced(data))))
    return first, best, left


def _imbalanced(data: SearchData) -> bool:
    counts = np.bincount(data.labels, minlength=len(data.classes))
    return counts.max() > IMBALANCE * max(counts.min(), 1)


def describe(candidate: dict) -> str:
    head = (f"linear head (l2 {candidate['l2']:g})" if candidate["head"] == "linear"
            else f"dense head ({'hidden ' + str(candidate['head_units'][0]) + ', ' if candidate.get('head_units') else ''}"
                 f"dropout {candidate['dropout']:.2g}, lr {candidate['learning_rate']:.2g}, "
                 f"{candidate['epochs']} epochs)")
    weights = ", balanced class weights" if candidate.get("class_weight") == "auto" else ""
    return f"{candidate['feature_block']} {candidate['pooling']}-pooled, {head}{weights}"
