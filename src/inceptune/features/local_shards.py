"""A feature-cache space in a folder (a path or a file:// URL): the default backend.

    SPACE/shards/KIND/WRITER-N.bin   entries appended back to back, up to SHARD_BYTES per file;
                                     every writing process appends to files of its own

An entry is appended to its shard and then indexed (a committed SQLite row),
so a killed run leaves only complete entries, plus at most a few bytes at a
shard's end that nothing points to (`cache prune` reclaims them).
"""

from __future__ import annotations

import numpy as np

from inceptune.features.shards import INSERT, SHARDS, Shards, index_row

SHARD_BYTES = 256 * 2**20


class LocalShards(Shards):
    """Shard files of this process's own in the space's folder, each entry indexed once its bytes are written."""

    def __init__(self, folder, space: dict):
        super().__init__(folder, space)
        self._files: dict[str, tuple] = {}  # kind -> (open file, its name, its number)

    def append(self, kind: str, sha256: str, stored: np.ndarray) -> None:
        data = stored.tobytes()
        with self._lock:
            f, name = self._shard(kind, len(data))
            offset = f.tell()
            f.write(data)
            f.flush()  # in the operating system's hands: a killed process cannot lose it
            self._db.execute(INSERT, index_row(kind, sha256, name, offset, stored, data))

    def flush(self) -> None:
        """Nothing to do: every entry is indexed as it is appended."""

    def close(self) -> None:
        with self._lock:
            for f, _, _ in self._files.values():
                f.close()
            self._files = {}
        super().close()

    def _shard(self, kind: str, size: int):
        """The file this process appends `size` bytes of `kind` to, and its name under shards/."""
        f, name, number = self._files.get(kind, (None, None, -1))
        if f is None or f.tell() + size > SHARD_BYTES:
            if f is not None:
                f.close()
            number += 1
            name = f"{kind}/{self.writer}-{number:04d}.bin"
            path = self.dir / SHARDS / name
            path.parent.mkdir(parents=True, exist_ok=True)
            f = open(path, "ab")
            self._files[kind] = (f, name, number)
        return f, name
