"""Where photos and the feature cache live: a local path, or a URL fsspec understands.

`local_path` turns a location into the path this process opens. A plain path
stays as it is; a `file://` URL (a folder every node of a cluster mounts at the
same path, such as NFS) becomes its path. Object stores (`s3://`, `gs://`, ...)
are refused in one sentence for now: the feature cache's index is SQLite, which
needs a filesystem with locks, so such a bucket has to be mounted (s3fs,
gcsfuse) and given as a path.
"""

from __future__ import annotations

import os

from inceptune.errors import UserError


def is_url(location: str | os.PathLike) -> bool:
    return "://" in str(location)


def local_path(location: str | os.PathLike) -> str:
    """The filesystem path of `location` (a path, or a file:// URL); one sentence for other URLs."""
    if not is_url(location):
        return str(location)
    import fsspec

    protocol = fsspec.utils.get_protocol(str(location))
    if protocol not in ("file", "local"):
        raise UserError(f"{location}: photos and the feature cache can be local paths or file:// URLs; mount the "
                        f"{protocol}:// storage (for example with s3fs or gcsfuse) and give its path.")
    return fsspec.core.url_to_fs(str(location))[1]
