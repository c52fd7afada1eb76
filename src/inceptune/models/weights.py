"""Where the backbone's weights come from.

    "imagenet"  Keras' official InceptionV3 file (downloaded once, md5-checked,
                cached in ~/.keras/models), or the local file named by the
                environment variable INCEPTUNE_WEIGHTS on offline machines.
    "none"      random initialisation (for training from scratch).
    PATH        a local InceptionV3 weights file (.h5 or .weights.h5); a narrower
                Inception-v3 (same layout, fewer channels) when the file says so
                (models/narrow.py writes such files: small real networks for tests).

Resolved once, here; everything else receives a `Weights`.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from inceptune.errors import UserError

ENV_VAR = "INCEPTUNE_WEIGHTS"

# Keras' own InceptionV3 files and hashes (keras/src/applications/inception_v3.py).
_KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
_KERAS_FILES = {
    False: ("inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5", "bcbd6486424b2319ff4ef7d526e38f63"),
    True: ("inception_v3_weights_tf_dim_ordering_tf_kernels.h5", "9a0d58056eeedaa3f26cb7ebd46da564"),
}


@dataclass(frozen=True)
class Weights:
    """Resolved backbone weights: a file (or none) and a fingerprint of its content."""

    spec: str  # what the user asked for: "imagenet", "none" or a path
    path: Path | None  # None means random initialisation
    fingerprint: str  # identifies the weights' content, for the feature cache

    @property
    def pretrained(self) -> bool:
        return self.path is not None

    @property
    def width(self) -> float:
        """The width multiplier of the Inception-v3 these weights are for (1: keras.applications')."""
        return 1.0 if self.path is None else declared_width(self.path)

    def describe(self) -> str:
        if self.path is None:
            return "random initialisation (--weights none)"
        described = f"{self.spec} ({self.path})" if self.spec == "imagenet" else str(self.path)
        return described if self.width == 1.0 else f"{described}, an Inception-v3 of width {self.width:g}"


def resolve_weights(spec: str = "imagenet", include_top: bool = False) -> Weights:
    """Turn a --weights value into a local file, downloading Keras' file if needed.

    Raises:
        UserError: when the file is missing or cannot be downloaded; the
            message names --weights and INCEPTUNE_WEIGHTS.
    """
    spec = str(spec)
    if spec.lower() == "none":
        return Weights("none", None, "random")
    if spec.lower() == "imagenet":
        local = os.environ.get(ENV_VAR)
        if local:
            path = Path(local).expanduser()
            if not path.is_file():
                raise UserError(
                    f"{ENV_VAR} points to {local}, which is not a file; set it to a local InceptionV3 "
                    "weights file or pass --weights PATH."
                )
            return Weights("imagenet", path.resolve(), file_fingerprint(path.resolve()))
        return _download_keras_weights(include_top)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise UserError(
            f"The weights file {spec} does not exist; pass --weights PATH to an InceptionV3 weights file, "
            f"--weights imagenet, or --weights none."
        )
    return Weights(spec, path.resolve(), file_fingerprint(path.resolve()))


def _download_keras_weights(include_top: bool) -> Weights:
    import keras

    fname, md5 = _KERAS_FILES[include_top]
    try:
        path = keras.utils.get_file(fname, _KERAS_ORIGIN + fname, cache_subdir="models", file_hash=md5)
    except Exception as exc:
        raise UserError(
            "The ImageNet weights for InceptionV3 could not be downloaded "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no network?'}); "
            f"pass --weights PATH to a local weights file, or set {ENV_VAR}=PATH on offline machines."
        ) from None
    return Weights("imagenet", Path(path).resolve(), f"keras-md5-{md5}")


WIDTH_ATTRIBUTE = "inceptune_inception_v3_width"  # set on weights files of a narrower Inception-v3


def declared_width(path: Path) -> float:
    """The width a weights file declares (its HDF5 root attribute), 1.0 when it declares none."""
    stat = Path(path).stat()
    return _width_cached(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _width_cached(path: str, size: int, mtime_ns: int) -> float:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return float(f.attrs.get(WIDTH_ATTRIBUTE, 1.0))
    except OSError:  # not HDF5: loading it says what is wrong
        return 1.0


@functools.lru_cache(maxsize=8)
def _fingerprint_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return "sha256-" + digest.hexdigest()


def file_fingerprint(path: Path) -> str:
    """sha256-... of a file's content (remembered while its size and modification time stay the same)."""
    stat = path.stat()
    return _fingerprint_cached(str(path), stat.st_size, stat.st_mtime_ns)
