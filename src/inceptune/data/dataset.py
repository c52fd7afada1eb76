"""A validated dataset: the images, their classes in a fixed order, and their splits.

`load_dataset` is the one entry point from a folder on disk to a `Dataset`;
the class order fixed here is written to the run folder and read back from
there, never recomputed.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from inceptune import console
from inceptune.data.scan import ImageRecord, SkippedFile, scan_dataset
from inceptune.data.fixes import apply_fixes
from inceptune.data.groups import merge_groups, with_name_groups
from inceptune.data.split import assign_splits, find_leakage
from inceptune.settings.schema import DEFAULTS
from inceptune.vocabulary.limits import DEFAULT_MAX_PIXELS

SPLITS = ("train", "val", "test")


@dataclass
class Dataset:
    root: str
    classes: list[str]
    records: list[ImageRecord]
    skipped: list[SkippedFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    leakage: list[dict] = field(default_factory=list)
    multilabel: bool = False  # records carry "a|b" label sets (data/multilabel.py)
    unsplit: list[ImageRecord] = field(default_factory=list)  # before carving: folder-given splits, groups
    carving: tuple = (DEFAULTS["val_split"], DEFAULTS["test_split"], DEFAULTS["seed"])  # val, test, seed
    fixes: dict = field(default_factory=dict)  # what --exclude and --relabel did (data/fixes.py)
    near_duplicates: dict | None = None  # clusters found in the features, once looked for

    def regrouped(self, links: list[tuple[str, str]], found: dict) -> "Dataset":
        """The dataset with linked images (pairs of paths: near-duplicates) in one group each, and its splits
        carved again so that every group sits in one split."""
        index = {r.path: i for i, r in enumerate(self.unsplit)}
        unsplit = merge_groups(self.unsplit, [(index[a], index[b]) for a, b in links])
        records = assign_splits(unsplit, *self.carving)
        return dataclasses.replace(self, records=records, unsplit=unsplit, near_duplicates=found)

    def split(self, name: str) -> list[ImageRecord]:
        return [r for r in self.records if r.split == name]

    def label_index(self, record: ImageRecord) -> int:
        return self.classes.index(record.label)

    def labels_of(self, record: ImageRecord) -> list[str]:
        """The record's classes: its one class, or its label set in a multi-label dataset."""
        return [label for label in record.label.split("|") if label] if self.multilabel else [record.label]

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per split and class (in a multi-label dataset an image counts for each of its labels)."""
        table = {s: Counter() for s in SPLITS}
        for r in self.records:
            table[r.split].update(self.labels_of(r))
        return {s: {c: table[s][c] for c in self.classes} for s in SPLITS}

    def summary(self) -> dict:
        return {
            "root": self.root,
            "classes": self.classes,
            "counts": self.counts(),
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "warnings": self.warnings,
            "leakage": self.leakage,
            **({"fixes": self.fixes} if self.fixes else {}),
            **({"near_duplicates": self.near_duplicates} if self.near_duplicates is not None else {}),
            **({"task": "multilabel"} if self.multilabel else {}),
        }


def load_dataset(
    root: str | os.PathLike,
    val_split: float = DEFAULTS["val_split"],
    test_split: float = DEFAULTS["test_split"],
    seed: int = DEFAULTS["seed"],
    max_pixels: int = DEFAULT_MAX_PIXELS,
    exclude: str | None = None,
    relabel: str | None = None,
    group_by: str | None = None,
) -> Dataset:
    """Scan, check and split a folder of class subfolders.

    Args:
        root: a folder of class subfolders, or of train/ (val/, test/) folders.
        val_split: fraction of each class carved from train for validation
            when there is no val/ folder.
        test_split: the same for a held-out test split when there is no test/.
        seed: fixes the carved splits.
        max_pixels: images with more pixels are skipped.
        exclude: a fixes CSV (audit's): leave its images out.
        relabel: a fixes CSV: give its images their suggested_label.
        group_by: a regular expression whose capture group, in a path relative to
            `root`, names a group of images that must share a split.

    Examples:
        >>> ds = load_dataset("photos/", val_split=0.2, test_split=0.1)
        >>> ds.classes, len(ds.split("train"))
    """
    scan = scan_dataset(root, max_pixels=max_pixels)
    return split_dataset(scan.root, scan.records, val_split, test_split, seed, exclude, relabel, group_by,
                         skipped=scan.skipped, warnings=scan.warnings)


def split_dataset(root: str, records: list[ImageRecord], val_split: float, test_split: float, seed: int,
                  exclude: str | None = None, relabel: str | None = None, group_by: str | None = None,
                  multilabel: bool = False, skipped=(), warnings=()) -> Dataset:
    """Checked records into a Dataset: fixes applied, name groups found, splits carved, leakage found.
    `root` is the dataset's folder, or a CSV whose folder relative paths are read against."""
    folder = root if Path(root).is_dir() else str(Path(root).parent)
    records, fixes = apply_fixes(records, folder, exclude, relabel, multilabel)
    unsplit = with_name_groups(records, folder, group_by)
    records = assign_splits(unsplit, val_split, test_split, seed)
    if multilabel:
        classes = sorted({label for r in records for label in r.label.split("|") if label})
    else:
        classes = sorted({r.label for r in records if r.split == "train"})
    dataset = Dataset(root, classes, records, list(skipped), list(warnings), find_leakage(records), multilabel,
                      unsplit, (val_split, test_split, seed), fixes)
    report(dataset)
    return dataset


def report(dataset: Dataset) -> None:
    counts = dataset.counts()
    sizes = ", ".join(f"{s} {sum(counts[s].values())}" for s in SPLITS)
    console.info(f"Dataset {dataset.root}: {len(dataset.classes)} classes ({', '.join(dataset.classes)}); {sizes}.")
    if dataset.skipped:
        console.warn(f"skipped {len(dataset.skipped)} file(s):")
        for s in dataset.skipped:
            console.info(f"  {s.path}: {s.reason}")
    for message in dataset.warnings:
        console.warn(message)
    for leak in dataset.leakage:
        files = ", ".join(f"{f['split']}:{f['path']}" for f in leak["files"])
        what = "near-duplicates" if leak.get("kind") == "near_duplicate" else "identical files"
        console.warn(f"leakage: {what} in {' and '.join(leak['splits'])}: {files}")
    for split in ("train", "val"):
        small = [c for c, n in counts[split].items() if 0 < n < 5]
        if small:
            console.warn(f"the {split} split has fewer than 5 images of {', '.join(small)}")


def manifest_rows(dataset: Dataset) -> list[dict]:
    """Path, label, split and content hash of every image: the rows of a run's manifest.csv."""
    return [{"path": r.path, "label": r.label, "split": r.split, "sha256": r.sha256, "group": r.group or ""}
            for r in dataset.records]


def read_manifest(path: Path) -> list[ImageRecord]:
    with open(path, newline="") as f:
        return [ImageRecord(row["path"], row["label"], row["sha256"], row["split"], row.get("group") or None)
                for row in csv.DictReader(f)]
