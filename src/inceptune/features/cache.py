"""An on-disk cache of backbone outputs: entries packed into shard files, found through an index.

A cache *space* is one way of computing features: backbone, weights
fingerprint, image size and resize method. Inside it, entries are keyed by
kind (e.g. "avg-pool", "before-mixed9") and the image's content hash, so a
renamed or copied file is still a hit and an edited one is a miss.

    SPACE/space.json                 what the space is
    SPACE/index.sqlite               (kind, sha256) -> shard, offset, bytes, dtype, shape, crc32
    SPACE/shards/KIND/WRITER-N.bin   entries back to back

Where the shards live is the backend's business (features/shards.py), chosen
from the location in `open_shards`: a path or a file:// URL keeps shard files
that every writing process appends to (features/local_shards.py); an object
store (`s3://bucket/store`, `gs://...`) keeps immutable objects, published
from memory, and `dir` is then a mirror under the user's cache folder
(features/object_store.py) that also holds what belongs to this machine
(the extraction runtime's choice).

Values are stored in float16 (half the bytes of float32; every feature and
activation of Inception-v3 fits its range, and a value that does not keeps
float32); `get` answers float32. A damaged entry (short, or failing its
checksum) is dropped from the index and computed again. Caches written before
0.6, one .npy file per entry, are still read.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from inceptune.features.local_shards import LocalShards
from inceptune.features.object_store import ObjectStoreShards
from inceptune.features.shards import NotIndexed, Shards
from inceptune.storage import is_remote, is_url, local_path

CACHE_ENV_VAR = "INCEPTUNE_CACHE"
STORED = np.float16
_F16_MAX = float(np.finfo(np.float16).max)


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


def open_shards(root: str | os.PathLike, key: str, space: dict) -> Shards:
    """The backend of the space `key` at `root`: shard files in a folder (a path or a file:// URL), or objects
    in an object store mirrored on this machine."""
    if is_remote(root):
        return ObjectStoreShards(f"{str(root).rstrip('/')}/{key}", mirror_dir(str(root)) / key, space)
    return LocalShards(Path(local_path(root)).expanduser() / key, space)


class FeatureCache:
    """Cached feature arrays for one feature space, under `root`."""

    def __init__(self, root: str | os.PathLike, space: dict):
        key = hashlib.sha256(json.dumps(space, sort_keys=True).encode()).hexdigest()[:16]
        self.space = space
        self.root = str(root) if is_url(root) else str(Path(root).expanduser().absolute())  # what a Ray actor opens
        self._shards = open_shards(root, key, space)
        self.dir = self._shards.dir

    @property
    def writer(self) -> str:
        """This process's name in the shard files it writes (`shards/KIND/WRITER-N.bin`)."""
        return self._shards.writer

    def legacy_path(self, kind: str, sha256: str) -> Path:
        """Where inceptune before 0.6 kept an entry: one .npy file."""
        return self.dir / kind / sha256[:2] / f"{sha256}.npy"

    def has(self, kind: str, sha256: str) -> bool:
        return self._shards.has(kind, sha256) or self.legacy_path(kind, sha256).is_file()

    def missing(self, kinds: list[str], hashes: list[str]) -> list[str]:
        """The hashes that lack at least one of `kinds`, in order (one query per kind, not per entry)."""
        present = self._shards.hashes(kinds)
        return [h for h in hashes if not all(h in present[k] or self.legacy_path(k, h).is_file() for k in kinds)]

    def entries(self) -> list[tuple[str, str]]:
        """(kind, sha256) of every indexed entry (pre-0.6 .npy entries not included)."""
        return self._shards.entries()

    def get(self, kind: str, sha256: str) -> np.ndarray | None:
        try:
            stored = self._shards.read(kind, sha256)
        except NotIndexed:
            return self._legacy_get(kind, sha256)
        return None if stored is None else stored.astype(np.float32)

    def put(self, kind: str, sha256: str, array: np.ndarray) -> None:
        array = np.asarray(array, dtype=np.float32)
        fits = np.isfinite(array).all() and (array.size == 0 or float(np.abs(array).max()) <= _F16_MAX)
        stored = np.ascontiguousarray(array.astype(STORED) if fits else array)
        self._shards.append(kind, sha256, stored)

    def flush(self) -> None:
        """Publish what is held in memory (an object store: shards, then their index part); a no-op on a path."""
        self._shards.flush()

    def close(self) -> None:
        self._shards.close()

    def _legacy_get(self, kind: str, sha256: str) -> np.ndarray | None:
        path = self.legacy_path(kind, sha256)
        try:
            return np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (ValueError, OSError, EOFError):
            path.unlink(missing_ok=True)  # damaged entry: recompute it
            return None
