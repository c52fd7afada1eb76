"""An on-disk cache of backbone outputs: entries packed into shard files, found through an index.

A cache *space* is one way of computing features: backbone, weights
fingerprint, image size and resize method. Inside it, entries are keyed by
kind (e.g. "avg-pool", "before-mixed9") and the image's content hash, so a
renamed or copied file is still a hit and an edited one is a miss.

    SPACE/space.json                 what the space is
    SPACE/index.sqlite               (kind, sha256) -> shard, offset, bytes, dtype, shape, crc32
    SPACE/shards/KIND/WRITER-N.bin   entries appended back to back, up to SHARD_BYTES per file;
                                     every writing process appends to files of its own

An entry is appended to its shard and then indexed (a committed SQLite row),
so a killed run leaves only complete entries, plus at most a few bytes at a
shard's end that nothing points to (`cache prune` reclaims them). A damaged
entry (short, or failing its checksum) is dropped from the index and
computed again. Values are stored in float16 (half the bytes of float32;
every feature and activation of Inception-v3 fits its range, and a value that
does not keeps float32); `get` answers float32. Caches written before 0.6,
one .npy file per entry, are still read.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import threading
import time
import zlib
from pathlib import Path

import numpy as np

from inceptune.atomic import atomic_write_json
from inceptune.storage import local_path

CACHE_ENV_VAR = "INCEPTUNE_CACHE"
SHARD_BYTES = 256 * 2**20
INDEX = "index.sqlite"
SHARDS = "shards"
STORED = np.float16
_F16_MAX = float(np.finfo(np.float16).max)


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "inceptune" / "features"


def feature_space(weights, image_size: int, seed: int = 0) -> dict:
    """The cache space of InceptionV3 features: `weights` is a resolved `Weights`; random weights
    (`none`) depend on the seed that initialised them."""
    return {
        "backbone": "inception_v3",
        "weights": weights.fingerprint if weights.pretrained else f"random-seed-{seed}",
        "image_size": image_size,
        "resize": "bilinear-antialias",
    }


def open_index(path: Path) -> sqlite3.Connection:
    """The space's index: WAL, so readers never wait for a writer and a commit does not fsync."""
    db = sqlite3.connect(str(path), timeout=120, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE IF NOT EXISTS entries (kind TEXT NOT NULL, sha256 TEXT NOT NULL, shard TEXT NOT NULL, "
               "offset INTEGER NOT NULL, nbytes INTEGER NOT NULL, dtype TEXT NOT NULL, shape TEXT NOT NULL, "
               "crc32 INTEGER NOT NULL, PRIMARY KEY (kind, sha256))")
    return db


class FeatureCache:
    """Cached feature arrays for one feature space, under `root`."""

    def __init__(self, root: str | os.PathLike, space: dict):
        key = hashlib.sha256(json.dumps(space, sort_keys=True).encode()).hexdigest()[:16]
        self.space = space
        self.dir = Path(local_path(root)).expanduser() / key  # a path, or a file:// URL (storage.py)
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.dir / "space.json").exists():
            atomic_write_json(self.dir / "space.json", space)
        else:
            os.utime(self.dir / "space.json")  # last used: what `cache prune --older-than` goes by
        self._db = open_index(self.dir / INDEX)
        self._lock = threading.Lock()
        self._writer = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._shards: dict[str, tuple] = {}  # kind -> (open file, its name, its number)
        self._readers: dict[str, int] = {}  # shard name -> file descriptor

    @property
    def writer(self) -> str:
        """This process's name in the shard files it writes (`shards/KIND/WRITER-N.bin`)."""
        return self._writer

    def legacy_path(self, kind: str, sha256: str) -> Path:
        """Where inceptune before 0.6 kept an entry: one .npy file."""
        return self.dir / kind / sha256[:2] / f"{sha256}.npy"

    def has(self, kind: str, sha256: str) -> bool:
        with self._lock:
            found = self._db.execute("SELECT 1 FROM entries WHERE kind=? AND sha256=?", (kind, sha256)).fetchone()
        return found is not None or self.legacy_path(kind, sha256).is_file()

    def missing(self, kinds: list[str], hashes: list[str]) -> list[str]:
        """The hashes that lack at least one of `kinds`, in order (one query per kind, not per entry)."""
        with self._lock:
            present = {kind: {row[0] for row in self._db.execute("SELECT sha256 FROM entries WHERE kind=?", (kind,))}
                       for kind in kinds}
        return [h for h in hashes if not all(h in present[k] or self.legacy_path(k, h).is_file() for k in kinds)]

    def entries(self) -> list[tuple[str, str]]:
        """(kind, sha256) of every indexed entry (pre-0.6 .npy entries not included)."""
        with self._lock:
            return [tuple(row) for row in self._db.execute("SELECT kind, sha256 FROM entries ORDER BY kind, sha256")]

    def get(self, kind: str, sha256: str) -> np.ndarray | None:
        with self._lock:
            row = self._db.execute("SELECT shard, offset, nbytes, dtype, shape, crc32 FROM entries WHERE kind=? AND "
                                   "sha256=?", (kind, sha256)).fetchone()
        if row is None:
            return self._legacy_get(kind, sha256)
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
        return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(json.loads(shape)).astype(np.float32)

    def put(self, kind: str, sha256: str, array: np.ndarray) -> None:
        array = np.asarray(array, dtype=np.float32)
        fits = np.isfinite(array).all() and (array.size == 0 or float(np.abs(array).max()) <= _F16_MAX)
        stored = np.ascontiguousarray(array.astype(STORED) if fits else array)
        data = stored.tobytes()
        with self._lock:
            f, name = self._shard(kind, len(data))
            offset = f.tell()
            f.write(data)
            f.flush()  # in the operating system's hands: a killed process cannot lose it
            self._db.execute("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (kind, sha256, name, offset, len(data), stored.dtype.str, json.dumps(stored.shape),
                              zlib.crc32(data)))

    def close(self) -> None:
        with self._lock:
            for f, _, _ in self._shards.values():
                f.close()
            for fd in self._readers.values():
                os.close(fd)
            self._shards, self._readers = {}, {}

    def __del__(self):
        try:
            self.close()
            self._db.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def _shard(self, kind: str, size: int):
        f, name, number = self._shards.get(kind, (None, None, -1))
        if f is None or f.tell() + size > SHARD_BYTES:
            if f is not None:
                f.close()
            number += 1
            name = f"{kind}/{self._writer}-{number:04d}.bin"
            path = self.dir / SHARDS / name
            path.parent.mkdir(parents=True, exist_ok=True)
            f = open(path, "ab")
            self._shards[kind] = (f, name, number)
        return f, name

    def _reader(self, shard: str) -> int:
        fd = self._readers.get(shard)
        if fd is None:
            fd = self._readers[shard] = os.open(self.dir / SHARDS / shard, os.O_RDONLY)
        return fd

    def _legacy_get(self, kind: str, sha256: str) -> np.ndarray | None:
        path = self.legacy_path(kind, sha256)
        try:
            return np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (ValueError, OSError, EOFError):
            path.unlink(missing_ok=True)  # damaged entry: recompute it
            return None

    def note_rate(self, seconds: float, images: int) -> None:
        """Record what extracting `images` images took here (a running mean per image): what re-extracting
        would cost, which budgets the recipe search even when every feature comes from the cache."""
        old = self.timing()
        total = old.get("images", 0) + images
        atomic_write_json(self.dir / "timing.json", {
            "images": total, "seconds_per_image": (old.get("seconds_per_image", 0.0) * old.get("images", 0)
                                                   + seconds) / total, "updated": time.time()})

    def timing(self) -> dict:
        try:
            return json.loads((self.dir / "timing.json").read_text())
        except (OSError, ValueError):
            return {}
