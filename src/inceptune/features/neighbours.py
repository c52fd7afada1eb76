"""Near-duplicates among images, by cosine similarity of their pooled features.

The features are mixed5's spatial average: early enough in Inception-v3 to
tell one photo from another of the same kind (later blocks answer "what is
it", which two different sunflowers share), late enough to survive a crop, a
resize, recompression and a brightness change. Pairs at or above a similarity
are found exactly (blocked matrix products) up to `EXACT_LIMIT` images, and
with a FAISS HNSW index past that; linked pairs form clusters.
"""

from __future__ import annotations

import numpy as np

from inceptune.features.sources import pooled_kind

DUPLICATE_KIND = pooled_kind("mixed5", "avg")  # cached by every pass that train and audit make
# Measured on flowers5 at 299 (BENCHMARKS.md): 30 planted near-duplicates (crop 85-95%, resize, JPEG 60-80,
# brightness +-10%) keep 0.960 or more with their original; at 0.95 every one is found and the largest cluster
# of the real photos is 11 frames of one sunflower series.
DUPLICATE_SIMILARITY = 0.95
EXACT_LIMIT = 20_000  # past this many images, an approximate index
_BLOCK = 2048
_NEIGHBOURS = 32  # per image, from the index


def unit_rows(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype="float32")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def similar_pairs(features: np.ndarray, threshold: float, exact_limit: int = EXACT_LIMIT
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, similarity) of every pair i < j whose cosine similarity is at least `threshold`, most similar
    first."""
    x = unit_rows(features)
    if len(x) <= exact_limit:
        rows, cols, sims = [], [], []
        for start in range(0, len(x), _BLOCK):
            block = x[start:start + _BLOCK] @ x.T
            i, j = np.nonzero(block >= threshold)
            i = i + start
            keep = j > i
            rows.append(i[keep]), cols.append(j[keep]), sims.append(block[i[keep] - start, j[keep]])
        i, j, s = (np.concatenate(v) if v else np.zeros(0) for v in (rows, cols, sims))
    else:
        i, j, s = _indexed_pairs(x, threshold)
    order = np.lexsort((j, i, -s))
    return i[order].astype(int), j[order].astype(int), s[order].astype("float32")


def _indexed_pairs(x: np.ndarray, threshold: float):
    import faiss

    index = faiss.IndexHNSWFlat(x.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efSearch = 2 * _NEIGHBOURS
    index.add(x)
    sims, neighbours = index.search(x, _NEIGHBOURS + 1)
    i = np.repeat(np.arange(len(x)), neighbours.shape[1])
    j, s = neighbours.ravel(), sims.ravel()
    keep = (j >= 0) & (j != i) & (s >= threshold)
    i, j, s = i[keep], j[keep], s[keep]
    low, high = np.minimum(i, j), np.maximum(i, j)
    pairs = np.unique(np.stack([low, high], axis=1), axis=0, return_index=True)[1]
    return low[pairs], high[pairs], s[pairs]


def clusters(count: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """The cluster of each of `count` items linked by the pairs (i, j): connected components, numbered by
    their first item; an item with no link is its own cluster."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(count, count))
    _, labels = connected_components(graph, directed=False)
    first = {}
    return np.array([first.setdefault(label, k) for k, label in enumerate(labels)])
