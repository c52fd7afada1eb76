"""Multi-label data: a CSV of `path,labels`, labels separated by `|` (an empty cell: none of them).

    path,labels
    photos/0001.jpg,beach|people
    photos/0002.jpg,people

Paths are relative to the CSV's folder. Every file is decode-checked and
hashed like a folder's images; unusable ones are skipped with a reason.
Splits are carved per label combination (so every combination with three
or more images is in each split), grouped by content hash as usual.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from inceptune.data.dataset import Dataset, split_dataset
from inceptune.data.scan import SkippedFile, check_files
from inceptune.errors import UserError
from inceptune.settings.schema import DEFAULTS
from inceptune.vocabulary.limits import DEFAULT_MAX_PIXELS

SEPARATOR = "|"


def is_multilabel_csv(data: str | os.PathLike) -> bool:
    path = Path(data)
    if path.suffix.lower() != ".csv" or not path.is_file():
        return False
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError):
        return False
    return {"path", "labels"} <= {h.strip().lower() for h in header}


def load_multilabel_csv(data: str | os.PathLike, val_split: float = DEFAULTS["val_split"],
                        test_split: float = DEFAULTS["test_split"], seed: int = DEFAULTS["seed"],
                        max_pixels: int = DEFAULT_MAX_PIXELS, exclude: str | None = None,
                        group_by: str | None = None) -> Dataset:
    path = Path(data)
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(f)]
    candidates, skipped = [], []
    for number, row in enumerate(rows, start=2):
        if not row.get("path"):
            skipped.append(SkippedFile(f"{path}:{number}", "no path in this row"))
            continue
        labels = sorted({label.strip() for label in row.get("labels", "").split(SEPARATOR) if label.strip()})
        candidates.append((path.parent / row["path"], SEPARATOR.join(labels), None))
    missing = [c for c in candidates if not c[0].is_file()]
    for file, _, _ in missing:
        skipped.append(SkippedFile(str(file), "listed in the CSV but not found"))
    records = check_files([c for c in candidates if c[0].is_file()], skipped, max_pixels)
    if not records:
        raise UserError(f"{path} lists no usable image; its paths are read relative to {path.parent}.")
    classes = sorted({label for r in records for label in r.label.split(SEPARATOR) if label})
    if len(classes) < 2:
        raise UserError(f"{path} names {len(classes)} label(s); a multi-label task needs at least two.")
    return split_dataset(str(path), records, val_split, test_split, seed, exclude, None, group_by,
                         multilabel=True, skipped=skipped)
