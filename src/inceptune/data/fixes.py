"""Fixes from an audit applied to a dataset without touching the user's files.

A fixes file is a CSV with a `path` column (audit's issues.csv, or the accepted
fixes audit.html downloads): `--exclude FIXES.csv` leaves those images out,
`--relabel FIXES.csv` gives each its `suggested_label`. Paths are matched after
resolving them; a relative path is read against the dataset's folder.
"""

from __future__ import annotations

import csv
import os
from dataclasses import replace
from pathlib import Path

from inceptune import console
from inceptune.data.scan import ImageRecord
from inceptune.errors import UserError

FIX_COLUMNS = ("path", "issue", "score", "suggested_label", "duplicate_of")  # issues.csv, in this order


def _key(path: str, root: str) -> str:
    p = Path(path).expanduser()
    return os.path.realpath(p if p.is_absolute() else Path(root) / p)


def read_fixes(path: str, root: str) -> dict[str, dict]:
    """{resolved image path: its row} of a fixes CSV; UserError when it cannot be read or has no path column."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if "path" not in (reader.fieldnames or []):
                raise UserError(f"{path} has no 'path' column; a fixes file is audit's issues.csv or the CSV "
                                "audit.html downloads.")
            return {_key(row["path"], root): row for row in reader if row.get("path")}
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"Cannot read the fixes file {path} ({getattr(exc, 'strerror', None) or exc}).") from None


def apply_fixes(records: list[ImageRecord], root: str, exclude: str | None, relabel: str | None,
                multilabel: bool = False) -> tuple[list[ImageRecord], dict]:
    """`records` less the excluded images and with the relabelled ones' new labels; and what was done."""
    done: dict = {}
    if relabel is not None:
        if multilabel:
            raise UserError("--relabel gives one class per image; a multi-label CSV is relabelled by editing it.")
        rows = read_fixes(relabel, root)
        classes = {r.label for r in records}
        changes, keyed = [], {_key(r.path, root): i for i, r in enumerate(records)}
        records = list(records)
        for key, row in rows.items():
            label = (row.get("suggested_label") or "").strip()
            if key not in keyed or not label:
                continue
            if label not in classes:
                raise UserError(f"{relabel} relabels {row['path']} as '{label}', which is not a class of {root}.")
            i = keyed[key]
            if records[i].label != label:
                changes.append({"path": records[i].path, "from": records[i].label, "to": label})
                records[i] = replace(records[i], label=label)
        done["relabel"] = {"file": os.path.realpath(relabel), "images": len(changes), "changes": changes,
                           "unmatched": sum(1 for k in rows if k not in keyed)}
        console.info(f"Relabelled {len(changes)} image(s) as {relabel} suggests (the files stay where they are).")
    if exclude is not None:
        rows = read_fixes(exclude, root)
        kept = [r for r in records if _key(r.path, root) not in rows]
        excluded = sorted(r.path for r in records if _key(r.path, root) in rows)
        matched = {_key(p, root) for p in excluded}
        done["exclude"] = {"file": os.path.realpath(exclude), "images": len(excluded), "paths": excluded,
                           "unmatched": sum(1 for k in rows if k not in matched)}
        console.info(f"Excluded {len(excluded)} image(s) listed in {exclude} (the files stay where they are).")
        records = kept
        if not records:
            raise UserError(f"{exclude} excludes every image of {root}.")
    for action in done.values():
        if action["unmatched"]:
            console.warn(f"{action['unmatched']} row(s) of {action['file']} name no image of {root}")
    return records, done
