"""The one backbone pass of a training run: every image (and every augmented view) into the feature cache.

    feature_cache  the cache space of these settings (weights, image size, precision)
    feature_kinds  what one pass keeps: pooled features, and the activations phase 2 starts from
    extract_features / extract_views  compute what the cache lacks, with a progress bar
"""

from __future__ import annotations

from dataclasses import dataclass

from inceptune import console
from inceptune.data.dataset import Dataset
from inceptune.data.scan import ImageRecord
from inceptune.engines.devices import Strategy
from inceptune.features.cache import FeatureCache, default_cache_dir, feature_space
from inceptune.features.duplicates import group_near_duplicates
from inceptune.features.extract import ExtractionStats, activations_kind, extract_to_cache
from inceptune.features.neighbours import DUPLICATE_KIND
from inceptune.vocabulary.sources import POOLED, SEARCH_KINDS, Source
from inceptune.models.classifier import Classifier
from inceptune.models.weights import Weights
from inceptune.settings import Settings


def feature_cache(s: Settings, weights: Weights) -> FeatureCache:
    space = feature_space(weights, s.recipe.image_size, s.data.seed)
    if s.run.precision != "float32":  # features computed in half precision are another space
        from inceptune.engines.devices import precision_policy

        space["policy"] = precision_policy(s.run.precision)
    return FeatureCache(s.run.cache_dir or default_cache_dir(), space)


def feature_kinds(s: Settings, views: bool = False) -> list[str]:
    """What one backbone pass must cache: pooled features (every source a search may choose, else the
    recipe's and the classic mixed10 average the baseline uses; mixed5's average, which finds near-duplicates),
    and the activations phase 2 starts from
    (for augmented views, only when phase 2 trains on them)."""
    r = s.recipe
    phase2 = r.fine_tune_epochs > 0 and (not views or r.phase2_augment == "views")
    pooled = SEARCH_KINDS if r.search != "none" else (POOLED, *Source(r.feature_block, r.pooling).kinds)
    pooled = (*pooled, DUPLICATE_KIND)  # near-duplicates keep to one split
    return list(dict.fromkeys(pooled)) + ([activations_kind(r.unfreeze_from)] if phase2 else [])


def extract_and_group(dataset: Dataset, cache: FeatureCache, classifier: Classifier, s: Settings,
                      strategy: Strategy = Strategy()) -> tuple[Dataset, ExtractionStats]:
    """Every image of `dataset` into the cache (on a cluster, this worker's share first), then the dataset
    with each near-duplicate cluster in one split (carved splits drawn again) and the clusters that given
    split folders cut reported as leakage."""
    stats = extract_features(dataset.records, cache, classifier, s, strategy)
    return group_near_duplicates(dataset, cache, s.data.duplicate_similarity), stats


def extract_features(records: list[ImageRecord], cache: FeatureCache, classifier: Classifier,
                     s: Settings, strategy: Strategy = Strategy()) -> ExtractionStats:
    """What the cache lacks of `records`. On a multi-worker cluster (`strategy`), each worker first computes its share
    (every N-th image) and waits for the others: with a cache they share, each image is computed once;
    with caches of their own, each worker then computes the rest itself."""
    def extract(part: list[ImageRecord], description: str = "Extracting features") -> ExtractionStats:
        return extract_to_cache(part, cache, classifier.extractor_base, feature_kinds(s), s.recipe.image_size,
                                s.recipe.batch_size, runtime=s.run.extract_runtime, description=description)

    share = None
    if strategy.cluster is not None:
        share = extract(strategy.share(records), f"Extracting features (worker {strategy.index}'s share)")
        strategy.barrier(share.computed)  # every worker's share is in its cache
    stats = extract(records)
    if share is not None:
        stats.computed += share.computed
        stats.from_cache -= share.computed
        stats.seconds += share.seconds
        stats.runtime = stats.runtime or share.runtime
    console.info(f"Features: {stats.images} images, {stats.from_cache} from cache, "
                 f"{stats.computed} computed ({stats.seconds:.1f}s)"
                 + (f", {share.computed} of them as worker {strategy.index}'s share." if share else "."))
    return stats


@dataclass
class Views:
    params: dict  # the resolved augmentation policy ({} without augmentation)
    count: int  # views per training image
    seed: int
    stats: ExtractionStats
    summary: dict | None
    hashes: frozenset = frozenset()  # the images whose views were extracted

    def covers(self, record: ImageRecord) -> bool:
        return record.sha256 in self.hashes

    def of(self, records: list[ImageRecord]) -> list[list[ImageRecord]]:
        """Per view, `records` standing for that augmented view (each its own cache key)."""
        from inceptune.training.augment import view_records

        return view_records(records, self.params, self.count, self.seed) if self.count and self.params else []


def extract_views(records: list[ImageRecord], cache: FeatureCache, classifier: Classifier, s: Settings) -> Views:
    """Run the base once on each of K augmented views of `records` (the images that will train), cached."""
    from inceptune.training.augment import build_augmenter
    from inceptune.vocabulary.policies import resolve_policy

    r = s.recipe
    params = resolve_policy(r.augment, r.aug)
    views = Views(params, r.views, s.data.seed, ExtractionStats(), None, frozenset(record.sha256 for record in records))
    if not r.views or not params:
        return views
    augmenter = build_augmenter(params, s.data.seed)
    total = views.stats
    for v, view in enumerate(views.of(records), 1):
        stats = extract_to_cache(view, cache, classifier.extractor_base, feature_kinds(s, views=True), r.image_size,
                                 r.batch_size, augment=augmenter, description=f"Augmented view {v}/{r.views}",
                                 runtime=s.run.extract_runtime)
        total.images += stats.images
        total.from_cache += stats.from_cache
        total.computed += stats.computed
        total.seconds += stats.seconds
    passes = 1 + r.views
    console.info(f"Augmentation '{r.augment}' {params}: {r.views} views per training image; phase 1 runs the base "
                 f"{passes} times per training image (the image and its views, each once, cached), "
                 f"{total.computed} view passes computed now, {total.from_cache} from cache.")
    views.summary = {"policy": r.augment, "params": params, "views": r.views, "base_passes_per_train_image": passes,
                     "view_passes_computed": total.computed, "view_passes_from_cache": total.from_cache}
    return views
