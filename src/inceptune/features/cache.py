"""An on-disk cache of backbone outputs, one small .npy file per image and kind.

A cache *space* is one way of computing features: backbone, weights
fingerprint, image size and resize method. Inside it, entries are keyed by
kind (e.g. "avg-pool", "before-mixed9") and the image's content hash, so a
renamed or copied file is still a hit and an edited one is a miss. Entries
are written to a temporary name and renamed, so an interrupted run leaves
only complete entries; a damaged entry is treated as missing.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from inceptune.atomic import atomic_path, atomic_write_json

CACHE_ENV_VAR = "INCEPTUNE_CACHE"


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


class FeatureCache:
    """Cached feature arrays for one feature space, under `root`."""

    def __init__(self, root: str | os.PathLike, space: dict):
        key = hashlib.sha256(json.dumps(space, sort_keys=True).encode()).hexdigest()[:16]
        self.space = space
        self.dir = Path(root).expanduser() / key
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.dir / "space.json").exists():
            atomic_write_json(self.dir / "space.json", space)

    def path(self, kind: str, sha256: str) -> Path:
        return self.dir / kind / sha256[:2] / f"{sha256}.npy"

    def has(self, kind: str, sha256: str) -> bool:
        return self.path(kind, sha256).is_file()

    def get(self, kind: str, sha256: str) -> np.ndarray | None:
        path = self.path(kind, sha256)
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
                                                   + seconds) / total})

    def timing(self) -> dict:
        try:
            return json.loads((self.dir / "timing.json").read_text())
        except (OSError, ValueError):
            return {}

    def put(self, kind: str, sha256: str, array: np.ndarray) -> None:
        with atomic_path(self.path(kind, sha256)) as tmp:
            np.save(tmp, np.ascontiguousarray(array), allow_pickle=False)
