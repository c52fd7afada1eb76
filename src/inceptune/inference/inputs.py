"""Expand the files and folders given to `predict` into a list of image paths."""

from __future__ import annotations

from pathlib import Path

from inceptune.data.images import has_image_extension
from inceptune.errors import UserError


def expand_inputs(inputs: list[str]) -> list[str]:
    """Files as given; folders walked for image files (sorted). Missing paths are an error."""
    if not inputs:
        raise UserError("Give at least one image file or folder to predict on.")
    paths: list[str] = []
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.is_file() and has_image_extension(f)
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                raise UserError(f"The folder {item} holds no image files.")
            paths += found
        elif p.is_file():
            paths.append(str(p))
        else:
            raise UserError(f"{item} does not exist.")
    return paths
