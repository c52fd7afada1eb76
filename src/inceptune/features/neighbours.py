"""Near-duplicates among images, by cosine similarity of their pooled features.

The features are mixed5's spatial average: early enough in Inception-v3 to
tell one photo from another of the same kind (later blocks answer "what is
it", which two different sunflowers share), late enough to survive a crop, a
resize, recompression and a brightness change. Neighbours are found exactly
(blocked matrix products) up to `EXACT_LIMIT` images, and with a FAISS HNSW
index past that; linked pairs form clusters.
"""

from __future__ import annotations

import numpy as np

from inceptune.vocabulary.limits import DUPLICATE_SIMILARITY
from inceptune.vocabulary.sources import pooled_kind

DUPLICATE_KIND = pooled_kind("mixed5", "avg")  # cached by every pass that train and audit make
# Two photos are near-duplicates when they are much closer to each other than to the rest of their
# neighbourhood: their cosine distance is at most RATIO times the distance from either to its NEIGHBOURS-th
# nearest photo (Lowe's ratio test, against a farther neighbour so that a burst of several copies still
# counts), and their similarity is at least a floor (DUPLICATE_SIMILARITY). What counts as close is read
# from each photo's own neighbourhood: a dense class of look-alike photos does not collapse into one cluster.
# Measured on flowers5 at 299 with 30 planted near-duplicates (crop 85-95%, resize, JPEG 60-80, brightness
# +-10%): 29 or 30 of 30 found, and no pair across classes (BENCHMARKS.md).
RATIO = 0.5
NEIGHBOURS = 10
EXACT_LIMIT = 20_000  # past this many images, an approximate index
_BLOCK = 2048
_INDEX_NEIGHBOURS = 32  # per image, from the index


def unit_rows(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype="float32")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def near_duplicate_pairs(features: np.ndarray, floor: float = DUPLICATE_SIMILARITY, ratio: float = RATIO,
                         exact_limit: int = EXACT_LIMIT) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, similarity) of every near-duplicate pair i < j, most similar first."""
    x = unit_rows(features)
    k = min(NEIGHBOURS, len(x) - 1)
    if k < 1:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0, "float32")
    i, j, s, kth = (_exact if len(x) <= exact_limit else _indexed)(x, floor, k)
    background = 1.0 - kth  # each photo's distance to its k-th nearest other photo
    keep = (1.0 - s) <= ratio * np.minimum(background[i], background[j]) + 1e-6
    i, j, s = i[keep], j[keep], s[keep]
    order = np.lexsort((j, i, -s))
    return i[order].astype(int), j[order].astype(int), s[order].astype("float32")


def _exact(x: np.ndarray, floor: float, k: int):
    rows, cols, sims, kth = [], [], [], []
    for start in range(0, len(x), _BLOCK):
        block = x[start:start + _BLOCK] @ x.T
        block[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf  # not its own neighbour
        kth.append(-np.partition(-block, k - 1, axis=1)[:, k - 1])
        i, j = np.nonzero(block >= floor)
        keep = j > i + start
        rows.append(i[keep] + start), cols.append(j[keep]), sims.append(block[i[keep], j[keep]])
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(sims), np.concatenate(kth)


def _indexed(x: np.ndarray, floor: float, k: int):
    import faiss

    index = faiss.IndexHNSWFlat(x.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efSearch = 2 * _INDEX_NEIGHBOURS
    index.add(x)
    sims, neighbours = index.search(x, _INDEX_NEIGHBOURS + 1)
    own = neighbours == np.arange(len(x))[:, None]
    sims, neighbours = np.where(own, -np.inf, sims), np.where(own, -1, neighbours)
    kth = -np.partition(-sims, k - 1, axis=1)[:, k - 1]
    i = np.repeat(np.arange(len(x)), neighbours.shape[1])
    j, s = neighbours.ravel(), sims.ravel()
    keep = (j >= 0) & (s >= floor)
    i, j, s = i[keep], j[keep], s[keep]
    low, high = np.minimum(i, j), np.maximum(i, j)
    first = np.unique(np.stack([low, high], axis=1), axis=0, return_index=True)[1]
    return low[first], high[first], s[first], kth


def clusters(count: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """The cluster of each of `count` items linked by the pairs (i, j): connected components, numbered by
    their first item; an item with no link is its own cluster."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(count, count))
    _, labels = connected_components(graph, directed=False)
    first = {}
    return np.array([first.setdefault(label, k) for k, label in enumerate(labels)])
