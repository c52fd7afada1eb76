"""What train, cv, tune, lr-find and audit do before their own work: one backbone pass over the run's data.

    load_training_data -> on_data (the workflow's own checks and output folder)
        -> starting_weights -> feature_cache and the extracting classifier -> extract_and_group

The five differ only where `prepare` takes an argument: cv pools the test split (`test_split=0.0`);
train and cv say which weights they start from (`say_weights`); train extracts with its own head setting
and lr-find with the classifier its range test trains (`classifier_settings`); tune passes settings without fine-tuning, so no phase-2
activations are cached for it. The folder each writes to is `on_data`'s answer, made once the data is read
and before the weights are.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from inceptune import console
from inceptune.data.dataset import Dataset
from inceptune.engines.devices import Strategy
from inceptune.features.cache import FeatureCache
from inceptune.features.extract import ExtractionStats
from inceptune.models.classifier import Classifier
from inceptune.models.weights import Weights, resolve_weights
from inceptune.settings import Settings
from inceptune.training.extraction import extract_and_group, feature_cache
from inceptune.training.two_phase import new_classifier
from inceptune.workflows.inputs import load_training_data


@dataclass
class Prepared:
    dataset: Dataset  # each near-duplicate cluster in one split (carved splits drawn again)
    source: dict  # where the data came from: data_kind (and the folder arrays were written to)
    out: Any  # what on_data answered: the workflow's output folder (and what it opened with it)
    weights: Weights
    head: list | None  # a saved head to start from (train --from a run with the same classes)
    cache: FeatureCache
    classifier: Classifier  # the network that extracted
    extraction: ExtractionStats
    seconds: float  # extraction and near-duplicate grouping, wall clock


def prepare(s: Settings, *, test_split: float | None = None, on_data: Callable[[Dataset], Any] | None = None,
            say_weights: bool = False, classifier_settings: Settings | None = None,
            strategy: Strategy = Strategy()) -> Prepared:
    """The run's data, weights, feature cache and extracting classifier, every image extracted and grouped.

    Args:
        s: the workflow's checked settings.
        test_split: the test share to carve (None: the settings'; cv pools every image, 0.0).
        on_data: called with the dataset as soon as it is read, before the weights: the workflow's checks
            and its output folder. Its answer is `Prepared.out`.
        say_weights: tell which weights the backbone starts from.
        classifier_settings: what the extracting classifier is built with; by default the mixed10 average
            base with a dense head, which extracts every source whatever the recipe (and a multi-label
            dataset meets no linear head's refusal).
        strategy: where the run trains (train's and cv's, from training_devices): on a multi-worker
            cluster, each worker extracts its share of the images first.
    """
    dataset, source = load_training_data(s, test_split)
    out = on_data(dataset) if on_data is not None else None
    weights, head = starting_weights(s, dataset, say_weights)
    settings = classifier_settings or s.replace(feature_block="mixed10", pooling="avg", head="dense")
    cache = feature_cache(s, weights)
    classifier = new_classifier(weights, dataset, settings)
    start = time.perf_counter()
    dataset, extraction = extract_and_group(dataset, cache, classifier, s, strategy)
    return Prepared(dataset, source, out, weights, head, cache, classifier, extraction, time.perf_counter() - start)


def starting_weights(s: Settings, dataset: Dataset, say: bool = False) -> tuple[Weights, list | None]:
    """The backbone's starting weights, and a saved head to keep (--from a run with the same classes; only
    train takes --from)."""
    if s.recipe.from_model:
        from inceptune.features.cache import local_cache_root
        from inceptune.models.source import load_source

        source = load_source(s.recipe.from_model, dataset.classes, local_cache_root(s.run.cache_dir), s.run.unsafe)
        weights, head = source.weights, source.head
    else:
        weights, head = resolve_weights(s.recipe.weights), None
    if say:
        console.info(f"Weights: {weights.describe()}")
    return weights, head
