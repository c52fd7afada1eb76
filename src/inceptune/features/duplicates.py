"""Near-duplicate images of a dataset, from the cached features: pairs, clusters, and the clusters that
folder-given splits cut (leakage). `group_near_duplicates` makes train's and cv's splits keep each cluster
together."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from inceptune import console
from inceptune.data.dataset import Dataset
from inceptune.data.scan import ImageRecord
from inceptune.features.cache import FeatureCache
from inceptune.features.neighbours import DUPLICATE_KIND, RATIO, clusters, near_duplicate_pairs

SHOWN = 5  # leaks printed; the record keeps them all
MAX_CLUSTER_SHARE = 0.25  # of the largest class among a cluster's photos


@dataclass
class NearDuplicates:
    records: list[ImageRecord]
    threshold: float
    i: np.ndarray  # pairs (i, j, similarity) of different files, most similar first
    j: np.ndarray
    similarity: np.ndarray
    cluster: np.ndarray  # per record: the index of its cluster's first record

    def links(self) -> list[tuple[str, str]]:
        return [(self.records[a].path, self.records[b].path) for a, b in zip(self.i, self.j)]

    def summary(self) -> dict:
        sizes = np.bincount(self.cluster, minlength=len(self.records))
        return {"similarity": self.threshold, "ratio": RATIO, "feature": DUPLICATE_KIND, "pairs": int(len(self.i)),
                "clusters": int((sizes > 1).sum()), "images": int(sizes[sizes > 1].sum()),
                "largest": int(sizes.max()) if len(sizes) else 0}


def find_near_duplicates(records: list[ImageRecord], cache: FeatureCache, threshold: float) -> NearDuplicates:
    """Near-duplicate pairs of different files by their mixed5 features (every record's must be cached):
    at least `threshold` similar and much closer to each other than to their neighbourhoods; and the
    clusters they link."""
    if threshold >= 1.0 or len(records) < 2:
        empty = np.zeros(0, dtype=int)
        return NearDuplicates(records, threshold, empty, empty, np.zeros(0, "float32"), np.arange(len(records)))
    features = np.stack([cache.get(DUPLICATE_KIND, r.sha256) for r in records])
    i, j, s = near_duplicate_pairs(features, threshold)
    different = np.array([records[a].sha256 != records[b].sha256 for a, b in zip(i, j)], dtype=bool)
    i, j, s = i[different], j[different], s[different]
    cluster = clusters(len(records), i, j)
    # A chain that swallows a large part of a class is a family of look-alikes (a series, synthetic
    # shapes), not copies of one photo: its links are dropped rather than its class put in one split.
    per_class = Counter(r.label for r in records)
    sizes = np.bincount(cluster, minlength=len(records))
    too_big = {int(c) for c in np.flatnonzero(sizes > 2) if sizes[c] > MAX_CLUSTER_SHARE * max(
        per_class[records[k].label] for k in np.flatnonzero(cluster == c))}
    if too_big:
        keep = np.array([int(cluster[a]) not in too_big for a in i], dtype=bool)
        i, j, s = i[keep], j[keep], s[keep]
        cluster = clusters(len(records), i, j)
        console.warn(f"{len(too_big)} chain(s) of similar photos spanning over a quarter of a class are not "
                      "treated as near-duplicates")
    return NearDuplicates(records, threshold, i, j, s, cluster)


def leakage(records: list[ImageRecord], found: NearDuplicates) -> list[dict]:
    """Clusters of `found` whose images sit in more than one split of `records`, with the pairs across."""
    split = {r.path: r.split for r in records}
    members: dict[int, list[int]] = {}
    for k, c in enumerate(found.cluster):
        members.setdefault(int(c), []).append(k)
    out = []
    for c, ks in sorted(members.items()):
        splits = sorted({split[found.records[k].path] for k in ks})
        if len(ks) < 2 or len(splits) < 2:
            continue
        across = [{"a": found.records[a].path, "b": found.records[b].path, "similarity": round(float(s), 4)}
                  for a, b, s in zip(found.i, found.j, found.similarity)
                  if found.cluster[a] == c and split[found.records[a].path] != split[found.records[b].path]]
        out.append({"kind": "near_duplicate", "cluster": c, "splits": splits, "pairs": across,
                    "files": [{"path": found.records[k].path, "split": split[found.records[k].path],
                               "label": found.records[k].label} for k in ks]})
    return out


def group_near_duplicates(dataset: Dataset, cache: FeatureCache, threshold: float) -> Dataset:
    """`dataset` with each near-duplicate cluster in one carved split, and the clusters that folder-given
    splits cut reported as leakage."""
    found = find_near_duplicates(dataset.unsplit, cache, threshold)
    regrouped = dataset.regrouped(found.links(), found.summary())
    crossing = leakage(regrouped.records, found)
    summary = found.summary()
    if summary["clusters"]:
        console.info(f"Near-duplicates: {summary['clusters']} cluster(s) of {summary['images']} images, each kept "
                     "in one split"
                     + (f"; {len(crossing)} cut by the given split folders" if crossing else "") + ".")
    for leak in crossing[:SHOWN]:
        pairs = ", ".join(f"{p['a']} ~ {p['b']} ({p['similarity']:.3f})" for p in leak["pairs"][:3])
        console.warn(f"leakage: near-duplicates in {' and '.join(leak['splits'])}: {pairs}")
    if len(crossing) > SHOWN:
        console.warn(f"leakage: {len(crossing) - SHOWN} more near-duplicate cluster(s) across splits "
                     "(dataset.json lists them all; inceptune audit shows them)")
    regrouped.leakage = dataset.leakage + crossing
    return regrouped
