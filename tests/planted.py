"""Faults planted in a copy of a photo folder, seeded, for the audit's tests: photos moved to a wrong
class, and near-duplicates (a crop of 85-95%, a resize, JPEG quality 60-80, a small brightness change)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance


def photos(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def move_to_wrong_class(root: Path, fraction: float, seed: int) -> dict[str, str]:
    """Move `fraction` of the photos of ROOT/<class>/ to another class folder, chosen at random; returns
    {new path: true class}."""
    rng = np.random.default_rng(seed)
    files = photos(root)
    classes = sorted({f.parent.name for f in files})
    moved = {}
    for i in sorted(rng.choice(len(files), int(round(fraction * len(files))), replace=False)):
        source = files[i]
        wrong = rng.choice([c for c in classes if c != source.parent.name])
        target = root / wrong / f"moved-{source.name}"
        shutil.move(source, target)
        moved[str(target)] = source.parent.name
    return moved


def near_duplicate(source: Path, target: Path, rng: np.random.Generator) -> Path:
    """Write a near-duplicate of `source`: cropped to 85-95%, resized, JPEG quality 60-80, brightness
    changed by up to 10%."""
    with Image.open(source) as img:
        img = img.convert("RGB")
        w, h = img.size
        keep = rng.uniform(0.85, 0.95)
        cw, ch = int(w * keep), int(h * keep)
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        img = img.crop((x, y, x + cw, y + ch))
        scale = rng.uniform(0.7, 1.3)
        img = img.resize((max(32, int(cw * scale)), max(32, int(ch * scale))), Image.BILINEAR)
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.9, 1.1))
        target.parent.mkdir(parents=True, exist_ok=True)
        img.save(target, format="JPEG", quality=int(rng.integers(60, 81)))
    return target


def plant_near_duplicates(root: Path, count: int, seed: int, into=None) -> list[tuple[str, str]]:
    """Write `count` near-duplicates of photos under ROOT beside their originals (or, with `into(path)`,
    where that says); returns the (original, duplicate) pairs."""
    rng = np.random.default_rng(seed)
    files = photos(root)
    pairs = []
    for i in sorted(rng.choice(len(files), count, replace=False)):
        source = files[i]
        target = into(source) if into else source.with_name(f"{source.stem}-near.jpg")
        pairs.append((str(source), str(near_duplicate(source, target, rng))))
    return pairs
