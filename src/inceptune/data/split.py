"""Deterministic, stratified train/val/test splits and leakage checks.

Splits given by folders are kept. Missing splits are carved per class from
train, by group: identical files (by content hash), a name group (`--group-by`,
`_nohash_`) or a near-duplicate cluster always land in the same split, and
each class's split depends only on its own groups and the seed, so adding a
class does not reshuffle the others.
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from dataclasses import replace

import numpy as np

from inceptune.data.scan import ImageRecord
from inceptune.errors import UserError


def assign_splits(
    records: list[ImageRecord], val_split: float, test_split: float, seed: int
) -> list[ImageRecord]:
    """Give every record a split; carve val/test from train where folders gave none. Records of one group
    (`ImageRecord.group_key`: identical files, a name group, a near-duplicate cluster) land in one split."""
    for name, value in (("val_split", val_split), ("test_split", test_split)):
        if not 0.0 <= value < 1.0:
            raise UserError(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}.")
    if val_split + test_split >= 1.0:
        raise UserError(f"--val-split plus --test-split must be below 1, got {val_split + test_split:g}.")

    given = {r.split for r in records if r.split is not None}
    carve = {"val": val_split if "val" not in given else 0.0, "test": test_split if "test" not in given else 0.0}
    pool = [r for r in records if r.split in (None, "train")]
    out = [r for r in records if r.split not in (None, "train")]

    groups: dict[str, list[ImageRecord]] = defaultdict(list)
    for r in pool:
        groups[r.group_key].append(r)
    by_class: dict[str, dict[str, list[ImageRecord]]] = defaultdict(dict)
    for key, members in groups.items():  # a group spanning classes is carved with its commonest class
        labels = Counter(r.label for r in members)
        home = min(labels, key=lambda label: (-labels[label], label))
        by_class[home][key] = members
    for label in sorted(by_class):
        out += _split_class(label, by_class[label], carve, seed)
    return sorted(out, key=lambda r: (r.split, r.label, r.path))


def _split_class(label: str, groups: dict[str, list[ImageRecord]], carve: dict[str, float], seed: int
                 ) -> list[ImageRecord]:
    keys = sorted(groups)
    rng = np.random.default_rng([seed, zlib.crc32(label.encode())])
    keys = [keys[i] for i in rng.permutation(len(keys))]
    n = len(keys)
    counts = {}
    for split in ("test", "val"):
        k = int(round(n * carve[split]))
        if carve[split] > 0 and k == 0 and n >= 3:
            k = 1  # a requested split gets at least one image of every class that can spare it
        counts[split] = k
    while counts["val"] + counts["test"] >= n and (counts["val"] or counts["test"]):
        bigger = "val" if counts["val"] >= counts["test"] else "test"
        counts[bigger] -= 1  # keep at least one image to train on
    order = ["test"] * counts["test"] + ["val"] * counts["val"]
    order += ["train"] * (n - len(order))
    return [replace(r, split=split) for key, split in zip(keys, order) for r in groups[key]]


def find_leakage(records: list[ImageRecord]) -> list[dict]:
    """Identical files (same content hash) that sit in more than one split."""
    by_hash: dict[str, list[ImageRecord]] = defaultdict(list)
    for r in records:
        by_hash[r.sha256].append(r)
    leaks = []
    for digest, group in sorted(by_hash.items()):
        splits = sorted({r.split for r in group})
        if len(splits) > 1:
            leaks.append({
                "sha256": digest,
                "splits": splits,
                "files": [{"path": r.path, "split": r.split, "label": r.label} for r in group],
            })
    return leaks


def assign_folds(labels: list[str], groups: list[str], folds: int, seed: int) -> np.ndarray:
    """The fold (0..folds-1) holding each item out: stratified by label, grouped (the items of a group, such as
    a record's `group_key`, never sit on both sides of a fold). UserError when a class has fewer items than
    folds."""
    from sklearn.model_selection import StratifiedGroupKFold

    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < folds:
        raise UserError(f"Class '{classes[counts.argmin()]}' has {counts.min()} images, fewer than {folds} folds; "
                        "use fewer folds or add images.")
    fold_of = np.empty(len(labels), dtype=int)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, held) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
        fold_of[held] = k
    return fold_of
