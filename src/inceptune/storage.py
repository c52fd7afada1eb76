"""Where photos and the feature store live: a local path, or a URL fsspec understands.

    a path, file:///nfs/photos     opened as files (`local_path`)
    s3://bucket/photos, gs://...   read through fsspec and its optional package (s3fs, gcsfs, adlfs):
                                   photo folders are listed and each photo read (`read_bytes`), and the
                                   feature store keeps its shards and index parts as objects there
                                   (features/object_store.py)

Credentials and endpoints are the object store's own settings (for S3: the
AWS_* variables or ~/.aws; AWS_ENDPOINT_URL for MinIO and other S3-compatible
stores); fsspec's FSSPEC_<PROTOCOL>_<OPTION> variables also apply.
"""

from __future__ import annotations

import os
from pathlib import Path

from inceptune.errors import UserError

LOCAL_PROTOCOLS = ("file", "local")
PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}


def is_url(location: str | os.PathLike) -> bool:
    return "://" in str(location)


def protocol(location: str | os.PathLike) -> str:
    return str(location).split("://", 1)[0].lower() if is_url(location) else "file"


def is_remote(location: str | os.PathLike) -> bool:
    """An object store or another filesystem this process reaches only through fsspec (not a path)."""
    return protocol(location) not in LOCAL_PROTOCOLS


def local_path(location: str | os.PathLike, what: str = "this command") -> str:
    """The filesystem path of `location` (a path, or a file:// URL); one sentence for an object store."""
    if not is_url(location):
        return str(location)
    if is_remote(location):
        raise UserError(f"{location}: {what} reads local paths and file:// URLs only; copy it from "
                        f"{protocol(location)}:// first, or mount the storage and give its path.")
    return str(location).split("://", 1)[1]


def filesystem(location: str):
    """(fsspec filesystem, path inside it) of a URL; one sentence when its package is missing."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(location)
    except ImportError:
        name = PACKAGES.get(protocol(location), "the fsspec package for it")
        raise UserError(f"{location}: {protocol(location)}:// locations need {name}: pip install {name}.") from None
    except ValueError as exc:  # an unknown protocol
        raise UserError(f"{location}: {exc}.") from None


def read_bytes(location: str | os.PathLike) -> bytes:
    """The bytes of one file: a path, a file:// URL or an object; OSError when it cannot be read."""
    if not is_remote(location):
        return Path(local_path(location)).read_bytes()
    fs, path = filesystem(str(location))
    try:
        return fs.cat_file(path)
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - each store's client raises its own types (credentials, network)
        raise OSError(f"{type(exc).__name__}: {exc}") from None


def store_error(location: str, exc: Exception) -> UserError:
    """One sentence for a store that cannot be reached, listed or written (credentials, network, bucket)."""
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return UserError(f"{location} cannot be used ({type(exc).__name__}: {reason}); check the address, that it "
                     f"exists, and the credentials for {protocol(location)}://.")
