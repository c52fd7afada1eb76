"""Walk a dataset folder, check every image, and say what was skipped and why.

Two layouts are understood:

    ROOT/<class>/...images...                      (splits are made later)
    ROOT/train/<class>/...  [ROOT/val/<class>/...] [ROOT/test/<class>/...]

Images may sit in nested folders under a class folder. Hidden files and
folders, non-image extensions and undecodable files are skipped with a
reason; symlinked folders are followed once (loops are cut). The folder may
be an object store's URL (s3://bucket/photos): its listing is walked the same
way, and records keep each photo's URL.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from inceptune import console
from inceptune.data.images import IMAGE_EXTENSIONS, decode_image, has_image_extension
from inceptune.errors import ImageError, UserError
from inceptune.data.remote_tree import location_tree
from inceptune.vocabulary.limits import DEFAULT_MAX_PIXELS

SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


@dataclass(frozen=True)
class ImageRecord:
    """One usable image: where it is, its class, its split and its content hash."""

    path: str
    label: str
    sha256: str
    split: str | None = None  # "train" | "val" | "test"; None until assigned
    group: str | None = None  # images that must share a split (a name group or a near-duplicate cluster)

    @property
    def group_key(self) -> str:
        """What splits and folds keep together: the record's group, else its content (identical files)."""
        return self.group or self.sha256


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


@dataclass
class ScanResult:
    root: str
    layout: str  # "classes" or "splits"
    records: list[ImageRecord]
    skipped: list[SkippedFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def scan_dataset(root: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS, min_classes: int = 2) -> ScanResult:
    """Find and check every image under `root`.

    Raises:
        UserError: when the folder is missing or holds no usable images.
    """
    root_path = location_tree(root)  # a path, a file:// URL, or an object store's listing (data/remote_tree.py)
    if root_path is None or not root_path.exists():
        raise UserError(f"The dataset folder {root} does not exist.")
    if not root_path.is_dir():
        raise UserError(f"{root} is a file; expected a folder holding one subfolder per class.")

    candidates: list[tuple[Path, str, str | None]] = []  # (file, label, split)
    skipped: list[SkippedFile] = []
    warnings: list[str] = []
    top = _visible_subfolders(root_path)
    split_dirs = {SPLIT_FOLDERS[d.name.lower()]: d for d in top if d.name.lower() in SPLIT_FOLDERS}
    layout = "splits" if "train" in split_dirs else "classes"
    _skip_loose_files(root_path, skipped)

    if layout == "splits":
        for name in sorted(set(top) - set(split_dirs.values())):
            warnings.append(f"folder '{name.name}' beside train/ is not a split (train, val, test) and is ignored")
        for split, split_dir in sorted(split_dirs.items()):
            _skip_loose_files(split_dir, skipped)
            for class_dir in _visible_subfolders(split_dir):
                candidates += [(f, class_dir.name, split) for f in _walk_files(class_dir, skipped)]
    else:
        for class_dir in top:
            candidates += [(f, class_dir.name, None) for f in _walk_files(class_dir, skipped)]

    records = check_files(candidates, skipped, max_pixels)
    result = ScanResult(str(root_path), layout, records, skipped, warnings)
    _check_classes(result, top if layout == "classes" else None, split_dirs, min_classes)
    return result


def _visible_subfolders(folder: Path) -> list[Path]:
    try:
        entries = sorted(folder.iterdir())
    except PermissionError:
        raise UserError(f"Cannot read the folder {folder}: permission denied.") from None
    subfolders = []
    for entry in entries:
        if entry.name.startswith("."):
            if entry.is_dir():
                continue  # .git, .ipynb_checkpoints and the like
        elif entry.is_dir():
            subfolders.append(entry)
    return subfolders


def _skip_loose_files(folder: Path, skipped: list[SkippedFile]) -> None:
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and not entry.name.startswith(".") and has_image_extension(entry):
            skipped.append(SkippedFile(str(entry), "not inside a class folder"))


def _walk_files(class_dir: Path, skipped: list[SkippedFile]) -> list[Path]:
    """Files under a class folder, following symlinked folders once."""
    files: list[Path] = []
    seen: set[tuple[int, int]] = set()
    stack = [class_dir]
    while stack:
        folder = stack.pop()
        try:
            stat = folder.stat()
        except OSError as exc:
            skipped.append(SkippedFile(str(folder), f"cannot read folder ({exc.strerror})"))
            continue
        if (stat.st_dev, stat.st_ino) in seen:
            skipped.append(SkippedFile(str(folder), "symlink loop (folder already visited)"))
            continue
        seen.add((stat.st_dev, stat.st_ino))
        try:
            entries = sorted(folder.iterdir())
        except OSError as exc:
            skipped.append(SkippedFile(str(folder), f"cannot read folder ({exc.strerror})"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                if entry.is_file() and not entry.is_dir():
                    skipped.append(SkippedFile(str(entry), "hidden file"))
                continue
            if entry.is_dir():
                stack.append(entry)
            elif not entry.exists():
                skipped.append(SkippedFile(str(entry), "broken symlink"))
            elif not has_image_extension(entry):
                ext = entry.suffix or "(none)"
                skipped.append(SkippedFile(
                    str(entry),
                    f"not an image file extension: {ext} (expected one of {', '.join(sorted(IMAGE_EXTENSIONS))})",
                ))
            else:
                files.append(entry)
    return sorted(files)


def _check_one(path, max_pixels: int) -> tuple[str | None, str | None]:
    """Return (sha256, None) for a usable image, (None, reason) otherwise."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"cannot read file ({exc.strerror or exc})"
    try:
        decode_image(data, max_pixels=max_pixels)
    except ImageError as exc:
        return None, exc.reason
    return hashlib.sha256(data).hexdigest(), None


def check_files(candidates, skipped, max_pixels) -> list[ImageRecord]:
    records: list[ImageRecord] = []
    workers = min(8, (os.cpu_count() or 1) * 2)
    with console.progress("Checking images", total=len(candidates)) as advance:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = pool.map(lambda c: _check_one(c[0], max_pixels), candidates)
            for (path, label, split), (digest, reason) in zip(candidates, results):
                if digest is None:
                    skipped.append(SkippedFile(str(path), reason))
                else:
                    records.append(ImageRecord(str(path), label, digest, split))
                advance()
    return records


def _check_classes(result: ScanResult, class_dirs: list[Path] | None, split_dirs: dict[str, Path],
                   min_classes: int) -> None:
    root = result.root
    if not result.records:
        detail = f" ({len(result.skipped)} files skipped, e.g. {result.skipped[0].path}: {result.skipped[0].reason})" if result.skipped else ""
        raise UserError(f"No readable images were found under {root}{detail}.")
    if result.layout == "classes":
        found = {r.label for r in result.records}
        for class_dir in class_dirs or []:
            if class_dir.name not in found:
                result.warnings.append(f"class folder '{class_dir.name}' holds no usable images and is ignored")
        classes = sorted(found)
    else:
        by_split: dict[str, set[str]] = {}
        for r in result.records:
            by_split.setdefault(r.split, set()).add(r.label)
        for split, split_dir in split_dirs.items():
            for class_dir in _visible_subfolders(split_dir):
                if class_dir.name not in by_split.get(split, set()):
                    result.warnings.append(f"class folder '{split_dir.name}/{class_dir.name}' holds no usable images and is ignored")
        classes = sorted(by_split.get("train", set()))
        for split, labels in sorted(by_split.items()):
            unknown = sorted(labels - set(classes))
            if unknown:
                raise UserError(
                    f"The {split}/ folder of {root} has class '{unknown[0]}' that train/ does not have; "
                    "every class in val/ and test/ must also be in train/."
                )
            missing = sorted(set(classes) - labels)
            if missing and split != "train":
                result.warnings.append(f"the {split}/ split has no images of class {', '.join(missing)}")
    if len(classes) < min_classes or not classes:
        only = f" ('{classes[0]}')" if classes else ""
        raise UserError(
            f"Found only one class{only} with images in {root}; a classifier needs at least two class folders."
        )
