"""cache info and cache prune: what the feature cache holds, and reclaiming its space."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

import inceptune

app = typer.Typer(no_args_is_help=True, help="The feature cache: what it holds, and reclaiming its space.")
CacheRootOpt = Annotated[Optional[str], typer.Option("--cache-dir", help="Feature cache folder (default $INCEPTUNE_CACHE or ~/.cache/inceptune/features).")]


@app.command("info")
def cache_info(cache_dir: CacheRootOpt = None,
               as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Each feature space in the cache: entries per kind, images, files and bytes."""
    spaces = inceptune.cache_info(cache_dir)
    if as_json:
        print(json.dumps(spaces, indent=2))
        return
    if not spaces:
        print("The feature cache is empty.")
    for s in spaces:
        what = s["space"]
        print(f"{s['key']}: {what.get('backbone', '?')} at {what.get('image_size', '?')} px, weights "
              f"{str(what.get('weights', '?'))[:19]}; last used {s['last_used']}")
        print(f"  {s['images']} images, {sum(s['entries'].values())} entries in {s['files']} files, "
              f"{s['disk_bytes'] / 2**20:.1f} MiB on disk ({s['unreferenced_bytes'] / 2**20:.1f} MiB unreferenced"
              + (f", {s['legacy_files']} pre-0.6 files" if s["legacy_files"] else "") + ")")
        for kind, count in s["entries"].items():
            print(f"    {kind}: {count}")


@app.command("prune")
def cache_prune(cache_dir: CacheRootOpt = None,
                older_than: Annotated[Optional[float], typer.Option(help="Also remove spaces not used for this many days.")] = None) -> None:
    """Reclaim space: shard files no entry points to, pre-0.6 entries, and (--older-than) unused spaces."""
    removed = inceptune.prune_cache(cache_dir, older_than)
    print(f"Removed {len(removed['spaces'])} space(s) and {removed['files']} file(s): "
          f"{removed['bytes'] / 2**20:.1f} MiB.")
