"""Where a feature cache keeps its entries: the interface of its two backends, and the index both keep.

    SPACE/space.json              what the space is
    SPACE/index.sqlite            (kind, sha256) -> shard, offset, bytes, dtype, shape, crc32
    SPACE/shards/KIND/NAME.bin    entries back to back; an entry is the range (offset, bytes) of its shard

FeatureCache (features/cache.py) turns arrays into stored arrays and back; a
backend keeps the stored arrays and answers what it holds:

    LocalShards        features/local_shards.py: shard files of its own per writer, appended then indexed
    ObjectStoreShards  features/object_store.py: immutable objects in a bucket, merged into a local mirror

SPACE is a folder on this machine either way (the space itself, or the
mirror of an object store's space). An entry is read by its index row: the
range of its shard there, checked against its checksum; a damaged entry
(short, or failing the checksum) is dropped from the index, so it is computed
again.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import zlib
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from inceptune.atomic import atomic_write_json

INDEX = "index.sqlite"
SHARDS = "shards"
INSERT = "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


def open_index(path: Path) -> sqlite3.Connection:
    """The space's index: WAL, so readers never wait for a writer and a commit does not fsync."""
    db = sqlite3.connect(str(path), timeout=120, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE IF NOT EXISTS entries (kind TEXT NOT NULL, sha256 TEXT NOT NULL, shard TEXT NOT NULL, "
               "offset INTEGER NOT NULL, nbytes INTEGER NOT NULL, dtype TEXT NOT NULL, shape TEXT NOT NULL, "
               "crc32 INTEGER NOT NULL, PRIMARY KEY (kind, sha256))")
    return db


def index_row(kind: str, sha256: str, shard: str, offset: int, stored: np.ndarray, data: bytes) -> tuple:
    """The index row of an entry whose bytes `data` (of `stored`) lie at `offset` in `shard`."""
    return kind, sha256, shard, offset, len(data), stored.dtype.str, json.dumps(stored.shape), zlib.crc32(data)


class NotIndexed(LookupError):
    """No entry of this kind and content hash is indexed (or held to be published)."""


class Shards(ABC):
    """The stored arrays of one feature space by (kind, sha256): shards, and the SQLite index in `dir` that
    finds them. A backend decides how an entry is kept (`append`) and made visible to other readers
    (`flush`); reading is the same for both."""

    def __init__(self, folder: Path, space: dict):
        self.dir = folder
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.dir / "space.json").exists():
            atomic_write_json(self.dir / "space.json", space)
        else:
            os.utime(self.dir / "space.json")  # last used: what `cache prune --older-than` goes by
        self._db = open_index(self.dir / INDEX)
        self._lock = threading.Lock()
        self.writer = f"{os.getpid()}-{secrets.token_hex(4)}"  # this process's name in the shards it writes
        self._readers: dict[str, int] = {}  # shard name -> file descriptor

    @abstractmethod
    def append(self, kind: str, sha256: str, stored: np.ndarray) -> None:
        """Keep one stored array (replacing an entry of the same kind and hash)."""

    @abstractmethod
    def flush(self) -> None:
        """Make what is held in memory visible to other readers (publish, then commit)."""

    def has(self, kind: str, sha256: str) -> bool:
        with self._lock:
            return self._row(kind, sha256) is not None

    def hashes(self, kinds: list[str]) -> dict[str, set[str]]:
        """The content hashes of each kind's entries."""
        with self._lock:
            return {kind: self._indexed(kind) for kind in kinds}

    def entries(self) -> list[tuple[str, str]]:
        """(kind, sha256) of every indexed entry, sorted."""
        with self._lock:
            return [tuple(row) for row in self._db.execute("SELECT kind, sha256 FROM entries ORDER BY kind, sha256")]

    def read(self, kind: str, sha256: str) -> np.ndarray | None:
        """The stored array of an entry; None when its bytes are damaged (the entry is forgotten, so it is
        computed again); NotIndexed when there is no such entry."""
        with self._lock:
            row = self._row(kind, sha256)
        if row is None:
            raise NotIndexed(kind, sha256)
        shard, offset, nbytes, dtype, shape, crc = row
        try:
            data = os.pread(self._reader(shard), nbytes, offset)
        except OSError:
            data = b""
        if len(data) != nbytes or zlib.crc32(data) != crc:  # damaged: forget it, so it is computed again
            with self._lock:
                self._db.execute("DELETE FROM entries WHERE kind=? AND sha256=? AND shard=? AND offset=?",
                                 (kind, sha256, shard, offset))
            return None
        return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(json.loads(shape))

    def close(self) -> None:
        """Flush, and close the shard files this process reads."""
        self.flush()
        with self._lock:
            for fd in self._readers.values():
                os.close(fd)
            self._readers = {}

    def __del__(self):
        try:
            self.close()
            self._db.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def _row(self, kind: str, sha256: str) -> tuple | None:
        """The index row of an entry (the lock held)."""
        return self._db.execute("SELECT shard, offset, nbytes, dtype, shape, crc32 FROM entries WHERE kind=? AND "
                                "sha256=?", (kind, sha256)).fetchone()

    def _indexed(self, kind: str) -> set[str]:
        """The content hashes of one kind's indexed entries (the lock held)."""
        return {row[0] for row in self._db.execute("SELECT sha256 FROM entries WHERE kind=?", (kind,))}

    def _reader(self, shard: str) -> int:
        fd = self._readers.get(shard)
        if fd is None:
            path = self.dir / SHARDS / shard
            self._fetch(shard, path)
            fd = self._readers[shard] = os.open(path, os.O_RDONLY)
        return fd

    def _fetch(self, shard: str, path: Path) -> None:
        """Bring a shard to `path` before it is first read; local shard files are there already."""
