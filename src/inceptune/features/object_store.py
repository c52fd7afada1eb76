"""A feature-cache space in an object store (s3://, gs://, ...): immutable objects, no locks.

    SPACE/space.json                    what the space is
    SPACE/shards/KIND/WRITER-N.bin      the entries one writer flushed at once, back to back
    SPACE/index/WRITER-N.json           their index rows; uploaded after the shards it points into

An object store has no appends and no locks, so each writer publishes whole
objects of its own, and a reader merges the index parts it has not seen yet
(features/cache.py keeps them in a local SQLite mirror). A part is the
commit: a writer killed before uploading it leaves shard objects that no part
points to, never a row without its bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

from inceptune.atomic import atomic_write_bytes
from inceptune.storage import filesystem, store_error

PART_FORMAT = 1


class ObjectStore:
    """The objects of one cache space under `url`."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.fs, self.base = filesystem(self.url)

    def _call(self, fn, *args, missing=None, **kwargs):
        """`fn(*args)`; `missing` when the object is not there (None: the store's error, one sentence)."""
        try:
            return fn(*args, **kwargs)
        except FileNotFoundError as exc:
            if missing is None:
                raise store_error(self.url, exc) from None
            return missing
        except Exception as exc:  # noqa: BLE001 - each store's client raises its own types
            raise store_error(self.url, exc) from None

    def ensure_space(self, space: dict) -> None:
        path = f"{self.base}/space.json"
        if not self._call(self.fs.exists, path, missing=False):
            self._call(self.fs.pipe_file, path, json.dumps(space, indent=2, sort_keys=True).encode())

    def publish(self, shards: dict[str, bytes], rows: list[tuple], part: str) -> None:
        """Upload shard objects, then the index part that makes their rows visible."""
        for name, blob in shards.items():
            self._call(self.fs.pipe_file, f"{self.base}/shards/{name}", blob)
        body = {"format": PART_FORMAT, "rows": [list(row) for row in rows]}
        self._call(self.fs.pipe_file, f"{self.base}/index/{part}.json", json.dumps(body).encode())

    def parts(self) -> list[str]:
        """The names of every published index part, as they are now (not a cached listing)."""
        folder = f"{self.base}/index"
        self.fs.invalidate_cache(folder)
        names = self._call(self.fs.ls, folder, detail=False, missing=[])
        return sorted(Path(name).stem for name in names if name.endswith(".json"))

    def read_parts(self, parts: list[str]) -> dict[str, list[tuple]]:
        """The rows of each index part, fetched concurrently (one request each)."""
        if not parts:
            return {}
        paths = [f"{self.base}/index/{part}.json" for part in parts]
        bodies = self._call(self.fs.cat, paths, on_error="raise")
        return {part: [tuple(row) for row in json.loads(bodies[path])["rows"]] for part, path in zip(parts, paths)}

    def download(self, shard: str, dest: Path) -> None:
        """A shard object into a local file (objects never change, so a copy stays good)."""
        data = self._call(self.fs.cat_file, f"{self.base}/shards/{shard}", missing=b"")
        if data:  # else gone (expired): the caller finds no file and computes the entry again
            atomic_write_bytes(dest, data)
