"""Features files: one row per image (path, label, content hash, vector) plus how they were made.

Parquet (the default) is written a row group at a time, so memory does not
grow with the number of images; `.npz` is written at the end from memory.
Both are written to a temporary name and renamed. The settings that made
the vectors (layer, pooling, image size, weights) travel in the file's
metadata, so `fit-features`, `predict` and `similar` compute new vectors
the same way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inceptune.atomic import atomic_path
from inceptune.errors import UserError

FORMATS = (".parquet", ".npz")
_META_KEY = b"inceptune"


@dataclass
class FeatureTable:
    paths: list[str]
    labels: list[str | None]
    hashes: list[str]
    vectors: np.ndarray  # (N, D) float32
    meta: dict

    def labelled(self) -> "FeatureTable":
        keep = [i for i, label in enumerate(self.labels) if label]
        return FeatureTable([self.paths[i] for i in keep], [self.labels[i] for i in keep],
                            [self.hashes[i] for i in keep], self.vectors[keep], self.meta)


def check_format(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UserError(f"--out must end in .parquet or .npz, got {Path(path).name}.")
    return suffix


Chunk = tuple[list[str], list[str | None], list[str], np.ndarray]


def write_features(path: str | os.PathLike, meta: dict, chunks: Iterable[Chunk]) -> int:
    """Write chunks of (paths, labels, hashes, vectors); returns the number of rows."""
    suffix = check_format(path)
    rows = 0
    with atomic_path(path) as tmp:
        if suffix == ".parquet":
            rows = _write_parquet(tmp, meta, chunks)
        else:
            parts = list(chunks)
            vectors = np.concatenate([c[3] for c in parts]) if parts else np.zeros((0, 0), np.float32)
            with open(tmp, "wb") as f:
                np.savez(f, path=np.array([p for c in parts for p in c[0]], dtype=str),
                         label=np.array([lab or "" for c in parts for lab in c[1]], dtype=str),
                         sha256=np.array([h for c in parts for h in c[2]], dtype=str),
                         vector=vectors.astype(np.float32), meta=np.array(json.dumps(meta)))
            rows = len(vectors)
    return rows


def _write_parquet(tmp: Path, meta: dict, chunks: Iterable[Chunk]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, rows = None, 0
    try:
        for paths, labels, hashes, vectors in chunks:
            dim = vectors.shape[1]
            schema = pa.schema([("path", pa.string()), ("label", pa.string()), ("sha256", pa.string()),
                                ("vector", pa.list_(pa.float32(), dim))], metadata={_META_KEY: json.dumps(meta)})
            flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
            table = pa.table([pa.array(paths), pa.array(labels, pa.string()), pa.array(hashes),
                              pa.FixedSizeListArray.from_arrays(flat, dim)], schema=schema)
            if writer is None:
                writer = pq.ParquetWriter(tmp, schema)
            writer.write_table(table)
            rows += len(paths)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise UserError("No image could be read, so no features file was written.")
    return rows


def read_features_file(path: str | os.PathLike) -> FeatureTable:
    suffix = check_format(path)
    if not Path(path).is_file():
        raise UserError(f"The features file {path} does not exist.")
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            meta = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}"))
            column = table.column("vector").combine_chunks()
            dim = column.type.list_size
            vectors = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32)
            return FeatureTable(table.column("path").to_pylist(), table.column("label").to_pylist(),
                                table.column("sha256").to_pylist(), vectors, meta)
        with np.load(path, allow_pickle=False) as data:
            return FeatureTable(data["path"].tolist(), [lab or None for lab in data["label"].tolist()],
                                data["sha256"].tolist(), data["vector"], json.loads(str(data["meta"])))
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"{path} is not an inceptune features file ({str(exc).splitlines()[0]}).") from None
