"""The recipe on one dataset's cached features: choose it, fit it on train (val held out), refit on train + val.

    choose_recipe (search on train + val) -> fit_two_phases on train, scored on val
        -> refit: the chosen recipe again on train + val (fine-tuning for the epochs phase 2 was kept)

`train` runs it once; `cv` once per fold, so cross-validation measures the recipe `train` really fits,
search and refit included (a nested CV: each fold's search never sees its held-out images).

Which recipe it fits: the settings as given, or what the search (search/choose.py) chose on the cached
features of the train and val splits, never the test split. What the quick search tries follows from the
data and the settings, never from the clock, so a rerun from the cache, a faster machine or a busy one
chooses the same recipe.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inceptune import console
from inceptune.atomic import atomic_write_json
from inceptune.data.dataset import Dataset
from inceptune.engines.devices import Strategy
from inceptune.errors import UserError
from inceptune.features.cache import FeatureCache
from inceptune.models.classifier import Classifier
from inceptune.models.weights import Weights
from inceptune.search.choose import choose
from inceptune.search.scoring import SearchData
from inceptune.search.space import SEARCHED
from inceptune.settings import Settings
from inceptune.training.extraction import Views
from inceptune.training.phases import Resume
from inceptune.training.splits import SplitData
from inceptune.training.two_phase import Fitted, fit_two_phases, keep_head, new_classifier


@dataclass
class FittedRecipe:
    settings: Settings  # with the chosen recipe (search none: they replay without a search)
    search: dict | None  # the search's record
    held: SplitData  # the dataset's own splits (val's and test's labels)
    first: Fitted  # the fit on train, validated on val
    val: np.ndarray | None  # val probabilities of the first fit (held out)
    classifier: Classifier  # the final model's (the refit's when there was one)
    final: Fitted
    final_splits: SplitData
    refit: dict | None

    def probabilities(self, split: str) -> np.ndarray:
        """A held-out split's probabilities from the final model."""
        return self.final_splits.probabilities(self.final.model, split, self.final.kind)


def fit_recipe(weights: Weights, dataset: Dataset, cache: FeatureCache, s: Settings, views: Views,
               head: list | None = None, log_dir: Path | None = None,
               resume: Resume | None = None, record_file: Path | None = None,
               strategy: Strategy = Strategy()) -> FittedRecipe:
    """Choose the recipe, fit it on train and refit it on train + val, every fit under `strategy`."""
    s, search = choose_recipe(s, dataset, cache, record_file, bool(resume and resume.state), strategy)
    classifier = new_classifier(weights, dataset, s)
    if head is not None:
        keep_head(classifier, head)
    splits = SplitData(dataset, classifier, cache, s, views)
    fitted = fit_two_phases(classifier, splits, s, log_dir=log_dir, resume=resume, strategy=strategy)
    val = splits.probabilities(fitted.model, "val", fitted.kind) if dataset.split("val") else None
    result = FittedRecipe(s, search, splits, fitted, val, classifier, fitted, splits, None)
    if s.recipe.refit and val is not None:
        _refit(result, weights, dataset, cache, views, head, strategy)
    return result


def _refit(result: FittedRecipe, weights: Weights, dataset: Dataset, cache: FeatureCache, views: Views,
           head: list | None, strategy: Strategy) -> None:
    """The chosen recipe fitted again on train + val: the head, and fine-tuning for the epochs it was kept
    (none when phase 2 did not beat phase 1 on val). Validation figures stay those of the first fit."""
    phase2 = [h for h in result.first.history if h["phase"] == "fine-tune"]
    kept = next((h["epoch"] for h in phase2 if h["kept"]), 0)
    merged = dataclasses.replace(dataset, records=[dataclasses.replace(r, split="train") if r.split == "val"
                                                   else r for r in dataset.records])
    again = result.settings.replace(fine_tune_epochs=kept, patience=kept + 1)
    console.info(f"Refit on train + val ({len(merged.split('train'))} images)"
                 + (f", fine-tuning {kept} epochs." if kept else "."))
    start = time.perf_counter()
    result.classifier = new_classifier(weights, merged, again)
    if head is not None:  # the same start as the first fit: a head kept by --from
        keep_head(result.classifier, head)
    result.final_splits = SplitData(merged, result.classifier, cache, again, views)
    result.final = fit_two_phases(result.classifier, result.final_splits, again, strategy=strategy)
    result.refit = {"on": "train + val", "images": len(merged.split("train")), "fine_tune_epochs": kept,
                    "seconds": round(time.perf_counter() - start, 3),
                    "note": "val figures are those of the fit on train alone (held out); the saved model is the "
                            "refit"}


# === Which recipe: the settings as given, or the search's choice on train + val ===

def search_data(s: Settings, dataset: Dataset, cache: FeatureCache) -> SearchData:
    records = dataset.split("train") + dataset.split("val")
    return SearchData.of(records, dataset.label_index, dataset.classes, cache, s.study.search_folds, s.data.seed)


def choose_recipe(s: Settings, dataset: Dataset, cache: FeatureCache, record_file: Path | None = None, resume: bool = False, strategy: Strategy = Strategy()
                  ) -> tuple[Settings, dict | None]:
    """The settings to fit (search none from here on), and the search's record for metrics.json. On a
    cluster (`strategy`), every worker searches the same candidates and the workers agree on the choice.

    The record is also written to `record_file` (RUN/search.json) at once, so a resumed run fits the
    recipe the interrupted run chose instead of searching again."""
    if resume and record_file is not None and record_file.is_file():
        record = json.loads(record_file.read_text())
        if record.get("recipe"):
            console.info(f"Resuming with the recipe the interrupted run chose ({record_file}).")
            changes = {k: tuple(v) if isinstance(v, list) else v for k, v in record["recipe"].items()
                       if k in SEARCHED}
            return s.replace(**changes, search="none"), record
    settings, record = _choose(s, dataset, cache, strategy)
    strategy.agree("the recipe the search chose", settings.as_dict()["recipe"])  # each worker fits the same models
    if record_file is not None:
        atomic_write_json(record_file, record or {})
    return settings, record


def _choose(s: Settings, dataset: Dataset, cache: FeatureCache, strategy: Strategy) -> tuple[Settings, dict | None]:
    mode = s.recipe.search
    if dataset.multilabel:
        if mode != "none":
            console.info("The recipe search covers single-label tasks; a multi-label run uses its settings as given.")
        return s.replace(search="none"), None
    try:
        data = search_data(s, dataset, cache)
    except UserError as exc:
        console.info(f"No recipe search: {exc}")
        return s.replace(search="none"), None
    if strategy.cluster is not None and s.study.timeout:  # a deadline could stop the workers at different recipes
        raise UserError("--timeout would let the workers of a cluster choose different recipes; leave it out with "
                        "--distribute multi-worker.")
    choice = choose(s, data, mode)
    return choice.apply(s), choice.record(len(data.records))
