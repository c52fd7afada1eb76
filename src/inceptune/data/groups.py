"""Which images must share a split: name groups (`--group-by REGEX`, retrain.py's `_nohash_` convention)
and links between images (near-duplicates), merged with identical files into one group per component.

A record's group is written to `ImageRecord.group`; splits and folds keep each `group_key` together.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from inceptune.data.scan import ImageRecord
from inceptune.errors import UserError

NOHASH = "_nohash_"  # photo_nohash_2.jpg and photo_nohash_7.jpg are one group (retrain.py's convention)


def compile_group_by(pattern: str | None) -> re.Pattern | None:
    if pattern is None:
        return None
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise UserError(f"--group-by {pattern!r} is not a regular expression ({exc}).") from None
    if regex.groups > 1:
        raise UserError(f"--group-by {pattern!r} has {regex.groups} capture groups; give one, which names the group.")
    return regex


def name_group(path: str, root: str, regex: re.Pattern | None) -> str | None:
    """The group a file's name puts it in: the capture group of `regex` (or its whole match) in the path
    relative to `root`, else the part of the file name before `_nohash_`; None when neither applies."""
    try:
        relative = Path(path).relative_to(root).as_posix()
    except ValueError:
        relative = Path(path).as_posix()
    if regex is not None:
        match = regex.search(relative)
        if match:
            return "name:" + (match.group(1) if regex.groups else match.group(0))
    name = Path(path).name
    if NOHASH in name:
        return "name:" + name.split(NOHASH, 1)[0]
    return None


def with_name_groups(records: list[ImageRecord], root: str, group_by: str | None) -> list[ImageRecord]:
    regex = compile_group_by(group_by)
    return [replace(r, group=name_group(r.path, root, regex) or r.group) for r in records]


def merge_groups(records: list[ImageRecord], links) -> list[ImageRecord]:
    """Join linked records (pairs of indices into `records`) and the members of each existing group into
    components; a component holding more than one group key gets one group, the smallest key."""
    parent = list(range(len(records)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    first: dict[str, int] = {}
    for i, r in enumerate(records):
        union(i, first.setdefault(r.group_key, i))
    for i, j in links:
        union(int(i), int(j))
    keys: dict[int, set[str]] = {}
    for i, r in enumerate(records):
        keys.setdefault(find(i), set()).add(r.group_key)
    return [replace(r, group=min(keys[find(i)])) if len(keys[find(i)]) > 1 else r for i, r in enumerate(records)]
