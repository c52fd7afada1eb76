"""Expand the files and folders given to `predict` into a list of image paths."""

from __future__ import annotations


from inceptune.data.images import has_image_extension
from inceptune.data.remote_tree import location_tree
from inceptune.errors import UserError


def expand_inputs(inputs: list[str]) -> list[str]:
    """Files as given; folders walked for image files (sorted). Missing paths are an error."""
    if not inputs:
        raise UserError("Give at least one image file or folder to predict on.")
    paths: list[str] = []
    for item in inputs:
        p = location_tree(item)  # a path, a file:// URL, or an object store's folder or photo
        if p is None:
            raise UserError(f"{item} does not exist.")
        if p.is_dir():
            found = sorted(str(f) for f in _files(p) if has_image_extension(f))
            if not found:
                raise UserError(f"The folder {item} holds no image files.")
            paths += found
        elif p.is_file():
            paths.append(str(p))
        else:
            raise UserError(f"{item} does not exist.")
    return paths


def _files(folder) -> list:
    """Every file under `folder` (a Path or a remote entry), hidden files and folders left out."""
    found = []
    for entry in folder.iterdir():
        if entry.name.startswith("."):
            continue
        found += _files(entry) if entry.is_dir() else [entry]
    return found
