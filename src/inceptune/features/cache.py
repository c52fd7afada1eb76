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

The store may also be an object store (`s3://bucket/store`, `gs://...`;
features/object_store.py): entries are then kept in memory and published as
whole objects (a shard per kind and an index part) every FLUSH_BYTES or
FLUSH_SECONDS and at `flush()`, which every extraction calls as it ends, Ctrl-C
included. Locally, `dir` is then a mirror under the user's cache folder: an
SQLite copy of the index parts merged so far, the shards read so far, and what
belongs to this machine (timing, the extraction runtime's choice).
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

from inceptune.atomic import atomic_write_bytes, atomic_write_json
from inceptune.features.object_store import ObjectStore
from inceptune.storage import is_remote, is_url, local_path

CACHE_ENV_VAR = "INCEPTUNE_CACHE"
SHARD_BYTES = 256 * 2**20
INDEX = "index.sqlite"
SHARDS = "shards"
STORED = np.float16
_F16_MAX = float(np.finfo(np.float16).max)
FLUSH_BYTES = 64 * 2**20  # an object store: entries held in memory before they are published
FLUSH_SECONDS = 30.0  # ... or after this long: a killed process loses at most this much work


def user_cache_home() -> Path:
    """inceptune's folder in the user's cache (XDG_CACHE_HOME, else ~/.cache)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "inceptune"


def default_cache_dir() -> Path | str:
    """$INCEPTUNE_CACHE (a path or a URL), else the features folder of the user's cache."""
    location = os.environ.get(CACHE_ENV_VAR)
    if location:
        return location if is_url(location) else Path(location).expanduser()
    return user_cache_home() / "features"


def mirror_dir(url: str) -> Path:
    """The local folder that mirrors an object-store cache: its index, the shards read, this machine's timings."""
    return user_cache_home() / "mirrors" / hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]


def local_cache_root(location: str | os.PathLike | None = None) -> Path:
    """A cache location's folder on this machine (for files kept beside it): the folder itself (a path or
    file:// URL), or an object store's local mirror."""
    location = location or default_cache_dir()
    return mirror_dir(str(location)) if is_remote(location) else Path(local_path(location)).expanduser()


def feature_space(weights, image_size: int, seed: int = 0) -> dict:
    """The cache space of InceptionV3 features: `weights` is a resolved `Weights`; random weights
    (`none`) depend on the seed that initialised them."""
    width = weights.width
    return {
        "backbone": "inception_v3" if width == 1.0 else f"inception_v3-width-{width:g}",
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
        self.root = str(root) if is_url(root) else str(Path(root).expanduser().absolute())  # what a Ray actor opens
        self._remote = ObjectStore(f"{self.root.rstrip('/')}/{key}") if is_remote(root) else None
        base = mirror_dir(self.root) if self._remote else Path(local_path(root)).expanduser()
        self.dir = base / key
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
        self._pending: dict[tuple[str, str], np.ndarray] = {}  # an object store: (kind, sha256) -> stored array
        self._pending_since, self._pending_bytes = 0.0, 0
        self._published = 0
        if self._remote:
            self._remote.ensure_space(space)
            self._db.execute("CREATE TABLE IF NOT EXISTS parts (name TEXT PRIMARY KEY)")
            self._sync()

    @property
    def writer(self) -> str:
        """This process's name in the shard files it writes (`shards/KIND/WRITER-N.bin`)."""
        return self._writer

    def legacy_path(self, kind: str, sha256: str) -> Path:
        """Where inceptune before 0.6 kept an entry: one .npy file."""
        return self.dir / kind / sha256[:2] / f"{sha256}.npy"

    def has(self, kind: str, sha256: str) -> bool:
        with self._lock:
            if (kind, sha256) in self._pending:
                return True
            found = self._db.execute("SELECT 1 FROM entries WHERE kind=? AND sha256=?", (kind, sha256)).fetchone()
        return found is not None or self.legacy_path(kind, sha256).is_file()

    def missing(self, kinds: list[str], hashes: list[str]) -> list[str]:
        """The hashes that lack at least one of `kinds`, in order (one query per kind, not per entry)."""
        self._sync()
        with self._lock:
            present = {kind: {row[0] for row in self._db.execute("SELECT sha256 FROM entries WHERE kind=?", (kind,))}
                       | {h for k, h in self._pending if k == kind} for kind in kinds}
        return [h for h in hashes if not all(h in present[k] or self.legacy_path(k, h).is_file() for k in kinds)]

    def entries(self) -> list[tuple[str, str]]:
        """(kind, sha256) of every indexed entry (pre-0.6 .npy entries not included)."""
        self._sync()
        with self._lock:
            return [tuple(row) for row in self._db.execute("SELECT kind, sha256 FROM entries ORDER BY kind, sha256")]

    def get(self, kind: str, sha256: str) -> np.ndarray | None:
        row = self._row(kind, sha256)
        if row is None and self._remote:  # another writer may have published it since (callers expect entries)
            self._sync()
            row = self._row(kind, sha256)
        if row is None:
            return self._legacy_get(kind, sha256)
        if isinstance(row, np.ndarray):
            return row.astype(np.float32)
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

    def _row(self, kind: str, sha256: str):
        """The index row of an entry, the stored array of one not yet published, or None."""
        with self._lock:
            if (kind, sha256) in self._pending:
                return self._pending[kind, sha256]
            return self._db.execute("SELECT shard, offset, nbytes, dtype, shape, crc32 FROM entries WHERE kind=? AND "
                                    "sha256=?", (kind, sha256)).fetchone()

    def put(self, kind: str, sha256: str, array: np.ndarray) -> None:
        array = np.asarray(array, dtype=np.float32)
        fits = np.isfinite(array).all() and (array.size == 0 or float(np.abs(array).max()) <= _F16_MAX)
        stored = np.ascontiguousarray(array.astype(STORED) if fits else array)
        if self._remote:
            with self._lock:
                self._pending_since = self._pending_since or time.monotonic()
                self._pending[kind, sha256] = stored
                self._pending_bytes += stored.nbytes
                due = (self._pending_bytes >= FLUSH_BYTES
                       or time.monotonic() - self._pending_since >= FLUSH_SECONDS)
            if due:
                self.flush()
            return
        data = stored.tobytes()
        with self._lock:
            f, name = self._shard(kind, len(data))
            offset = f.tell()
            f.write(data)
            f.flush()  # in the operating system's hands: a killed process cannot lose it
            self._db.execute("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (kind, sha256, name, offset, len(data), stored.dtype.str, json.dumps(stored.shape),
                              zlib.crc32(data)))

    def flush(self) -> None:
        """Publish what is held in memory (an object store: shards, then their index part); a no-op on a path."""
        if not self._remote:
            return
        with self._lock:
            pending, self._pending, self._pending_since, self._pending_bytes = self._pending, {}, 0.0, 0
            if not pending:
                return
            self._published += 1
            part = f"{self._writer}-{self._published:04d}"
            shards: dict[str, bytearray] = {}
            rows = []
            for (kind, sha256), stored in pending.items():
                name = f"{kind}/{part}.bin"
                blob = shards.setdefault(name, bytearray())
                data = stored.tobytes()
                rows.append((kind, sha256, name, len(blob), len(data), stored.dtype.str, json.dumps(stored.shape),
                             zlib.crc32(data)))
                blob += data
            blobs = {name: bytes(blob) for name, blob in shards.items()}
            try:
                self._remote.publish(blobs, rows, part)
            except BaseException:
                self._pending = {**pending, **self._pending}  # kept for the next flush (Ctrl-C mid-upload)
                self._pending_bytes = sum(a.nbytes for a in self._pending.values())
                raise
            for name, blob in blobs.items():  # this machine reads them next: no download
                atomic_write_bytes(self.dir / SHARDS / name, blob)
            self._merge(part, rows)

    def _sync(self) -> None:
        """An object store: merge the index parts published since the last look into the local mirror."""
        if not self._remote:
            return
        with self._lock:
            known = {row[0] for row in self._db.execute("SELECT name FROM parts")}
        new = self._remote.read_parts([part for part in self._remote.parts() if part not in known])
        with self._lock:
            for part, rows in new.items():
                self._merge(part, rows)

    def _merge(self, part: str, rows: list[tuple]) -> None:
        self._db.execute("BEGIN")
        self._db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        self._db.execute("INSERT OR IGNORE INTO parts VALUES (?)", (part,))
        self._db.execute("COMMIT")

    def close(self) -> None:
        self.flush()
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
            path = self.dir / SHARDS / shard
            if self._remote and not path.exists():  # an object store: the whole shard, once, into the mirror
                self._remote.download(shard, path)
            fd = self._readers[shard] = os.open(path, os.O_RDONLY)
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
