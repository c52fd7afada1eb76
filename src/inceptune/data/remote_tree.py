"""A folder in an object store (s3://, gs://, ...) as a tree the scan walks like local folders.

One listing of every object under the URL gives the tree; each entry offers
what the scan uses of `pathlib.Path` (name, suffix, iterdir, is_dir, is_file,
exists, stat, read_bytes), and its `str` is its full URL, which is what records
keep and what `load_image` opens later, on this machine or a Ray actor's.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path, PurePosixPath

from inceptune.storage import filesystem, is_remote, local_path, read_bytes, store_error

_ids = itertools.count(1)


class RemoteEntry:
    """A file (children None) or a folder of an object store."""

    def __init__(self, url: str, children: dict[str, RemoteEntry] | None):
        self.url, self.children, self._id = url, children, next(_ids)

    def __str__(self) -> str:
        return self.url

    __fspath__ = __str__

    def __repr__(self) -> str:
        return f"RemoteEntry({self.url!r})"

    def __lt__(self, other: RemoteEntry) -> bool:
        return self.url < other.url

    @property
    def name(self) -> str:
        return PurePosixPath(self.url.split("://", 1)[1]).name

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    def iterdir(self) -> list[RemoteEntry]:
        return list((self.children or {}).values())

    def is_dir(self) -> bool:
        return self.children is not None

    def is_file(self) -> bool:
        return self.children is None

    def exists(self) -> bool:
        return True

    def stat(self) -> os.stat_result:
        return os.stat_result((0, self._id, 0, 0, 0, 0, 0, 0, 0, 0))  # st_ino: one per entry (no symlinks here)

    def read_bytes(self) -> bytes:
        return read_bytes(self.url)


def remote_tree(url: str) -> RemoteEntry | None:
    """Every object under `url` as a tree; None when nothing is there."""
    fs, base = filesystem(url)
    base = base.rstrip("/")
    try:
        fs.invalidate_cache(base)
        if fs.isfile(base):
            return RemoteEntry(fs.unstrip_protocol(base), None)
        found = fs.find(base, detail=False)
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - each store's client raises its own types
        raise store_error(url, exc) from None
    if not found:
        return None
    root = RemoteEntry(fs.unstrip_protocol(base), {})
    for path in sorted(found):
        parts = PurePosixPath(path[len(base):].lstrip("/")).parts
        folder = root
        for depth, part in enumerate(parts[:-1], 1):
            folder = folder.children.setdefault(part, RemoteEntry(fs.unstrip_protocol(
                "/".join((base, *parts[:depth]))), {}))
            if folder.children is None:  # an object named like a folder: its files are not reachable as a path
                break
        else:
            if parts:
                folder.children.setdefault(parts[-1], RemoteEntry(fs.unstrip_protocol(path), None))
    return root


def location_tree(location: str | os.PathLike) -> Path | RemoteEntry | None:
    """What a photo location is to walk: a local Path (a path or file:// URL), else the object store's tree
    (None when nothing is there)."""
    if is_remote(location):
        return remote_tree(str(location))
    return Path(local_path(location)).expanduser()
