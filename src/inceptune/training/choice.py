"""Which recipe a training run fits: the settings as given, or what the search chose on train + val.

The search (search/choose.py) scores recipes on the cached features of the train and val splits, never
the test split. Its budget is a quarter of what extracting the run's images costs, measured where the
features were computed (the cache records it), so a rerun from the cache searches as much as the first run.
"""

from __future__ import annotations

import json
from pathlib import Path

from inceptune import console
from inceptune.atomic import atomic_write_json
from inceptune.engines.cluster import active as active_cluster
from inceptune.data.dataset import Dataset
from inceptune.errors import UserError
from inceptune.features.cache import FeatureCache
from inceptune.features.extract import ExtractionStats
from inceptune.search.choose import BUDGET_SHARE, choose
from inceptune.search.scoring import SearchData
from inceptune.search.space import SEARCHED
from inceptune.settings import Settings


# Used only when a cache holds no measurement (made by an older inceptune): a 2-core CPU's rate at 299.
UNMEASURED_SECONDS_PER_IMAGE = 0.08


def extraction_cost(cache: FeatureCache, images: int, stats: ExtractionStats) -> float:
    """Seconds extracting `images` images costs here: the cache's measured rate (this run's, if it computed
    any), else a 2-core CPU's."""
    rate = cache.timing().get("seconds_per_image") or UNMEASURED_SECONDS_PER_IMAGE
    return images * rate


def search_data(s: Settings, dataset: Dataset, cache: FeatureCache) -> SearchData:
    records = dataset.split("train") + dataset.split("val")
    return SearchData.of(records, dataset.label_index, dataset.classes, cache, s.study.search_folds, s.data.seed)


def choose_recipe(s: Settings, dataset: Dataset, cache: FeatureCache, extraction: ExtractionStats,
                  record_file: Path | None = None, resume: bool = False) -> tuple[Settings, dict | None]:
    """The settings to fit (search none from here on), and the search's record for metrics.json.

    The record is also written to `record_file` (RUN/search.json) at once, so a resumed run fits the
    recipe the interrupted run chose instead of searching again."""
    if resume and record_file is not None and record_file.is_file():
        record = json.loads(record_file.read_text())
        if record.get("recipe"):
            console.info(f"Resuming with the recipe the interrupted run chose ({record_file}).")
            changes = {k: tuple(v) if isinstance(v, list) else v for k, v in record["recipe"].items()
                       if k in SEARCHED}
            return s.replace(**changes, search="none"), record
    settings, record = _choose(s, dataset, cache, extraction)
    cluster = active_cluster()
    if cluster is not None:  # every worker fits the same models, step by step
        cluster.agree("the recipe the search chose", settings.as_dict()["recipe"])
    if record_file is not None:
        atomic_write_json(record_file, record or {})
    return settings, record


def _choose(s: Settings, dataset: Dataset, cache: FeatureCache, extraction: ExtractionStats
            ) -> tuple[Settings, dict | None]:
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
    cost = extraction_cost(cache, len({r.sha256 for r in dataset.records}), extraction)
    if active_cluster() is not None:  # a time budget could stop the workers' searches at different recipes
        if s.study.timeout and mode == "full":
            raise UserError("--timeout would let the workers of a cluster choose different recipes; give --trials "
                            "alone with --distribute multi-worker.")
        budget = None
    else:
        budget = BUDGET_SHARE * cost if mode == "quick" else None
    choice = choose(s, data, mode, budget)
    record = {**choice.record(len(data.records)), "extraction_cost_seconds": round(cost, 3),
              "budget_share": BUDGET_SHARE if mode == "quick" else None}
    return choice.apply(s), record
