"""A feature-cache space in an object store (s3://, gs://, ...): immutable objects, no locks.

    SPACE/space.json                    what the space is
    SPACE/shards/KIND/WRITER-N.bin      the entries one writer flushed at once, back to back
    SPACE/index/WRITER-N.json           their index rows; uploaded after the shards it points into

An object store has no appends and no locks, so each writer publishes whole
objects of its own, and a reader merges the index parts it has not seen yet
into a local SQLite mirror. A part is the commit: a writer killed before
uploading it leaves shard objects that no part points to, never a row without
its bytes.

Entries are kept in memory and published (a shard per kind and an index part)
every FLUSH_BYTES or FLUSH_SECONDS and at `flush()`, which every extraction
calls as it ends, Ctrl-C included. The mirror (features/cache.py's
`mirror_dir`, under the user's cache folder) holds the SQLite copy of the
index parts merged so far and the shards read so far.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from inceptune.atomic import atomic_write_bytes
from inceptune.features.shards import INSERT, SHARDS, NotIndexed, Shards, index_row
from inceptune.storage import filesystem, store_error

PART_FORMAT = 1
FLUSH_BYTES = 64 * 2**20  # entries held in memory before they are published
FLUSH_SECONDS = 30.0  # ... or after this long: a killed process loses at most this much work


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


class ObjectStoreShards(Shards):
    """The entries of the space at `url`, held in memory until published; `mirror` is this machine's copy of
    its index (merged from the parts) and of the shards it has read."""

    def __init__(self, url: str, mirror: Path, space: dict):
        self._store = ObjectStore(url)
        super().__init__(mirror, space)
        self._pending: dict[tuple[str, str], np.ndarray] = {}  # (kind, sha256) -> stored array
        self._pending_since, self._pending_bytes = 0.0, 0
        self._published = 0
        self._store.ensure_space(space)
        self._db.execute("CREATE TABLE IF NOT EXISTS parts (name TEXT PRIMARY KEY)")
        self.refresh()

    def append(self, kind: str, sha256: str, stored: np.ndarray) -> None:
        with self._lock:
            self._pending_since = self._pending_since or time.monotonic()
            self._pending[kind, sha256] = stored
            self._pending_bytes += stored.nbytes
            due = self._pending_bytes >= FLUSH_BYTES or time.monotonic() - self._pending_since >= FLUSH_SECONDS
        if due:
            self.flush()

    def flush(self) -> None:
        """Publish what is held in memory: its shards, then their index part."""
        with self._lock:
            pending, self._pending, self._pending_since, self._pending_bytes = self._pending, {}, 0.0, 0
            if not pending:
                return
            self._published += 1
            part = f"{self.writer}-{self._published:04d}"
            shards: dict[str, bytearray] = {}
            rows = []
            for (kind, sha256), stored in pending.items():
                name = f"{kind}/{part}.bin"
                blob = shards.setdefault(name, bytearray())
                data = stored.tobytes()
                rows.append(index_row(kind, sha256, name, len(blob), stored, data))
                blob += data
            blobs = {name: bytes(blob) for name, blob in shards.items()}
            try:
                self._store.publish(blobs, rows, part)
            except BaseException:
                self._pending = {**pending, **self._pending}  # kept for the next flush (Ctrl-C mid-upload)
                self._pending_bytes = sum(a.nbytes for a in self._pending.values())
                raise
            for name, blob in blobs.items():  # this machine reads them next: no download
                atomic_write_bytes(self.dir / SHARDS / name, blob)
            self._merge(part, rows)

    def refresh(self) -> None:
        """Merge the index parts published since the last look into the local mirror."""
        with self._lock:
            known = {row[0] for row in self._db.execute("SELECT name FROM parts")}
        new = self._store.read_parts([part for part in self._store.parts() if part not in known])
        with self._lock:
            for part, rows in new.items():
                self._merge(part, rows)

    def has(self, kind: str, sha256: str) -> bool:
        with self._lock:
            return (kind, sha256) in self._pending or self._row(kind, sha256) is not None

    def hashes(self, kinds: list[str]) -> dict[str, set[str]]:
        """The content hashes of each kind's entries, published (by any writer, up to now) or held here."""
        self.refresh()
        with self._lock:
            return {kind: self._indexed(kind) | {h for k, h in self._pending if k == kind} for kind in kinds}

    def entries(self) -> list[tuple[str, str]]:
        """(kind, sha256) of every published entry, sorted."""
        self.refresh()
        return super().entries()

    def read(self, kind: str, sha256: str) -> np.ndarray | None:
        try:
            return self._read(kind, sha256)
        except NotIndexed:  # another writer may have published it since (callers expect entries)
            self.refresh()
            return self._read(kind, sha256)

    def _read(self, kind: str, sha256: str) -> np.ndarray | None:
        with self._lock:
            held = self._pending.get((kind, sha256))
        return super().read(kind, sha256) if held is None else held

    def _merge(self, part: str, rows: list[tuple]) -> None:
        """Index a part's rows and remember the part, in one transaction (the lock held)."""
        self._db.execute("BEGIN")
        self._db.executemany(INSERT, rows)
        self._db.execute("INSERT OR IGNORE INTO parts VALUES (?)", (part,))
        self._db.execute("COMMIT")

    def _fetch(self, shard: str, path: Path) -> None:
        if not path.exists():  # the whole shard, once, into the mirror
            self._store.download(shard, path)
