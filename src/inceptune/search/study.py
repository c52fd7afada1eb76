"""An Optuna study of recipes on cached features: seeded TPE, a median pruner, optional SQLite storage.

Each trial scores one candidate (search/space.suggest) fold by fold, reporting the running mean accuracy
so the pruner can stop a poor trial early. With storage, a killed study resumes: its finished trials
stay, a trial the kill cut short is marked failed, and the study runs until it has --trials finished
(complete or pruned) trials.
"""

from __future__ import annotations

import logging
import time

import optuna
from optuna.trial import TrialState

from inceptune import console, hooks
from inceptune.search.scoring import SearchData, score
from inceptune.search.space import suggest
from inceptune.settings.resolve import timeout_seconds

STUDY_NAME = "inceptune-tune"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
STARTUP_TRIALS = 8  # random trials before TPE models the space, and before the pruner judges


def open_study(seed: int, storage: str | None) -> optuna.Study:
    optuna.logging.set_verbosity(logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS, n_warmup_steps=1)
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage, sampler=sampler, pruner=pruner,
                                direction="maximize", load_if_exists=storage is not None)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        # cut short by a kill: nothing else runs this study (its folder is ours)
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    return study


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def run_study(data: SearchData, base: dict, fixed: dict, trials: int, timeout: str | None, seed: int,
              storage: str | None = None, start_from: dict | None = None,
              on_trial=None) -> optuna.Study:
    """Run trials until `trials` have finished (counting those of an earlier, interrupted run) or `timeout`."""
    study = open_study(seed, storage)
    if start_from is not None and not study.trials:
        study.enqueue_trial({k: ("none" if v is None else v) for k, v in start_from.items()
                             if k not in fixed and k != "head_units"}, skip_if_exists=True)
    todo = trials - finished(study)
    if todo <= 0:
        return study
    deadline = None if timeout is None else time.monotonic() + timeout_seconds(timeout)

    def objective(trial: optuna.Trial) -> float:
        candidate = {**base, **suggest(trial, fixed)}

        def report(step: int, value: float) -> None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        trial.set_user_attr("recipe", {k: list(v) if isinstance(v, tuple) else v
                                       for k, v in candidate.items() if k != "batch_size"})
        result = score(candidate, data, report)
        trial.set_user_attr("log_loss", result.log_loss)
        trial.set_user_attr("per_fold", result.per_fold)
        return result.accuracy

    with console.progress("Search trials", total=todo) as advance:
        def callback(study: optuna.Study, trial) -> None:
            advance(1)
            if on_trial is not None:
                on_trial(study, trial)
            hooks.reached("trial_finished", number=trial.number)
            if finished(study) >= trials or (deadline is not None and time.monotonic() >= deadline):
                study.stop()

        study.optimize(objective, n_trials=None, callbacks=[callback], catch=(),
                       timeout=None if deadline is None else max(deadline - time.monotonic(), 0.001))
    return study
