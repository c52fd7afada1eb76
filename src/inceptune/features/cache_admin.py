"""`inceptune cache info` and `inceptune cache prune`: what the feature cache holds, and reclaiming its space.

info    per space: what it is, when it was last used, entries per kind, images, files, bytes on disk and
        bytes that no entry points to (the tail a killed run left, entries written again)
prune   removes spaces not used for --older-than days; in the others, shard files that no entry points to
        (left alone while younger than an hour: a running extraction may be writing them) and pre-0.6
        .npy entries
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from inceptune.errors import UserError
from inceptune.features.cache import default_cache_dir, mirror_dir
from inceptune.features.shards import INDEX, SHARDS, open_index
from inceptune.storage import is_remote, local_path

BUSY_SECONDS = 3600


def spaces(root: str | Path | None = None) -> list[Path]:
    root = root or default_cache_dir()
    if is_remote(root):
        raise UserError(f"{root}: cache info and cache prune read a local cache; an object store's objects are "
                        f"listed and expired with its own tools (this machine's mirror of it: {mirror_dir(str(root))}).")
    root = Path(local_path(root)).expanduser()
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "space.json").is_file())


def space_info(space: Path) -> dict:
    files = [f for f in space.rglob("*") if f.is_file()]
    shard_bytes = sum(f.stat().st_size for f in (space / SHARDS).rglob("*.bin")) if (space / SHARDS).is_dir() else 0
    entries, stored, images = {}, 0, 0
    if (space / INDEX).is_file():
        db = open_index(space / INDEX)
        try:
            entries = dict(db.execute("SELECT kind, COUNT(*) FROM entries GROUP BY kind ORDER BY kind").fetchall())
            stored = db.execute("SELECT COALESCE(SUM(nbytes), 0) FROM entries").fetchone()[0]
            images = db.execute("SELECT COUNT(DISTINCT sha256) FROM entries").fetchone()[0]
        finally:
            db.close()
    return {"key": space.name, "path": str(space), "space": json.loads((space / "space.json").read_text()),
            "last_used": time.strftime("%Y-%m-%d %H:%M", time.localtime((space / "space.json").stat().st_mtime)),
            "entries": entries, "images": images, "files": len(files),
            "disk_bytes": sum(f.stat().st_size for f in files), "unreferenced_bytes": max(0, shard_bytes - stored),
            "legacy_files": sum(1 for f in files if f.suffix == ".npy")}


def cache_info(cache_dir: str | Path | None = None) -> list[dict]:
    """Each feature space in the cache at `cache_dir` (default $INCEPTUNE_CACHE or ~/.cache/inceptune/features)."""
    return [space_info(space) for space in spaces(cache_dir)]


def prune_cache(cache_dir: str | Path | None = None, older_than_days: float | None = None) -> dict:
    """Reclaim space in the cache at `cache_dir` as described above; returns what was removed."""
    if older_than_days is not None and older_than_days < 0:
        raise UserError(f"--older-than is a number of days, 0 or more, got {older_than_days}.")
    now, removed = time.time(), {"spaces": [], "files": 0, "bytes": 0}
    for space in spaces(cache_dir):
        if older_than_days is not None and now - (space / "space.json").stat().st_mtime > older_than_days * 86400:
            removed["bytes"] += sum(f.stat().st_size for f in space.rglob("*") if f.is_file())
            shutil.rmtree(space)
            removed["spaces"].append(space.name)
            continue
        referenced = set()
        if (space / INDEX).is_file():
            db = open_index(space / INDEX)
            try:
                referenced = {row[0] for row in db.execute("SELECT DISTINCT shard FROM entries")}
            finally:
                db.close()
        for f in list((space / SHARDS).rglob("*.bin")) if (space / SHARDS).is_dir() else []:
            name = f.relative_to(space / SHARDS).as_posix()
            if name not in referenced and now - f.stat().st_mtime > BUSY_SECONDS:
                removed["bytes"] += f.stat().st_size
                removed["files"] += 1
                f.unlink()
        for f in list(space.glob("*/??/*.npy")):  # one file per entry, before 0.6
            removed["bytes"] += f.stat().st_size
            removed["files"] += 1
            f.unlink()
    return removed
