"""Datasets that arrive as arrays: numpy files or a FER2013-style CSV, and folders loaded into memory.

    X.npy + y.npy (or X_train/y_train, X_val/y_val, X_test/y_test .npy) in a folder, or one .npz
    emotion,pixels,Usage CSV: 48x48 grayscale pixels as a space-separated string,
                             Usage Training / PublicTest / PrivateTest = train / val / test

Everything becomes an `ArrayDataset`: uint8 images (N, H, W, C), class
indices and a split per image. Missing splits are carved per class with the
same seeded rule as folders (`--val-split`, `--test-split`).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inceptune import console
from inceptune.data.dataset import SPLITS
from inceptune.errors import UserError

FER_EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_USAGE = {"training": "train", "publictest": "val", "privatetest": "test"}
LUMINANCE = (0.299, 0.587, 0.114)  # ITU-R BT.601, as Pillow's convert("L")


@dataclass
class ArrayDataset:
    source: str
    classes: list[str]
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) class indices
    splits: np.ndarray  # (N,) "train" | "val" | "test"
    skipped: list[dict] = field(default_factory=list)
    paths: list[str] | None = None  # when loaded from image files

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        mask = self.splits == name
        return self.images[mask], self.labels[mask]

    def summary(self) -> dict:
        counts = {s: {c: int(((self.splits == s) & (self.labels == i)).sum()) for i, c in enumerate(self.classes)}
                  for s in SPLITS}
        return {"root": self.source, "classes": self.classes, "counts": counts, "skipped": self.skipped,
                "warnings": [], "leakage": [], "image_shape": list(self.images.shape[1:])}


def is_array_source(data: str | os.PathLike) -> bool:
    path = Path(data)
    if path.is_file():
        return path.suffix.lower() in (".csv", ".npz", ".npy")
    return path.is_dir() and any(path.glob("X*.npy"))


def load_arrays(data: str | os.PathLike, val_split: float, test_split: float, seed: int) -> ArrayDataset:
    """An ArrayDataset from numpy files or a FER-style CSV."""
    path = Path(data)
    if path.suffix.lower() == ".csv":
        dataset = _load_fer_csv(path)
    elif path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            dataset = _from_split_arrays(str(path), {"train": (arrays["X"], arrays["y"])} if "X" in arrays else
                                         {s: (arrays[f"X_{s}"], arrays[f"y_{s}"]) for s in SPLITS if f"X_{s}" in arrays})
    else:
        folder = path if path.is_dir() else path.parent
        pairs = {}
        if (folder / "X.npy").is_file():
            pairs["train"] = (folder / "X.npy", folder / "y.npy")
        for s in SPLITS:
            if (folder / f"X_{s}.npy").is_file():
                pairs[s] = (folder / f"X_{s}.npy", folder / f"y_{s}.npy")
        missing = [str(y) for _, y in pairs.values() if not y.is_file()]
        if not pairs or missing:
            raise UserError(f"{data} needs X.npy with y.npy (or X_train.npy with y_train.npy) beside it"
                            + (f"; {missing[0]} is missing." if missing else "."))
        dataset = _from_split_arrays(str(folder), {s: (_load_npy(x), _load_npy(y)) for s, (x, y) in pairs.items()})
    return _carve(dataset, val_split, test_split, seed)


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)  # pickled object arrays could run code: refused
    except ValueError as exc:
        raise UserError(f"{path} could not be read as a plain numpy array ({str(exc).splitlines()[0]}).") from None
    except OSError as exc:
        raise UserError(f"{path} could not be read ({exc.strerror or exc}).") from None


def _from_split_arrays(source: str, arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> ArrayDataset:
    images, labels, splits = [], [], []
    for split, (x, y) in arrays.items():
        x, y = _as_images(x, source), np.asarray(y)
        if y.ndim == 2 and y.shape[1] > 1:  # one-hot
            y = y.argmax(axis=1)
        y = y.reshape(-1)
        if len(x) != len(y):
            raise UserError(f"{source}: the {split} images and labels differ in number ({len(x)} vs {len(y)}).")
        images.append(x)
        labels.append(y)
        splits += [split] * len(y)
    shapes = {x.shape[1:] for x in images}
    if len(shapes) > 1:
        raise UserError(f"{source}: the splits have different image shapes ({', '.join(map(str, shapes))}).")
    all_labels = np.concatenate(labels)
    names = sorted({str(v) for v in all_labels.tolist()}, key=lambda v: (len(v), v) if v.isdigit() else (1e9, v))
    index = {n: i for i, n in enumerate(names)}
    return ArrayDataset(source, names, np.concatenate(images), np.array([index[str(v)] for v in all_labels.tolist()]),
                        np.array(splits))


def _as_images(x: np.ndarray, source: str) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) numbers -> uint8 (N, H, W, C); values in [0, 1] are scaled to [0, 255]."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise UserError(f"{source}: images must be (N, H, W) or (N, H, W, 1 or 3), got shape {x.shape}.")
    if not np.issubdtype(x.dtype, np.number):
        raise UserError(f"{source}: images must be numbers, got {x.dtype}.")
    if np.issubdtype(x.dtype, np.floating) and x.size and float(np.nanmax(x)) <= 1.0:
        console.info(f"{source}: pixel values are in [0, 1]; scaling them to [0, 255].")
        x = x * 255.0
    return np.clip(np.nan_to_num(x), 0, 255).astype(np.uint8)


def _load_fer_csv(path: Path) -> ArrayDataset:
    try:
        f = open(path, newline="", encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path} could not be read ({exc.strerror or exc}).") from None
    images, labels, splits, skipped = [], [], [], []
    with f:
        reader = csv.DictReader(f)
        columns = {c.strip().lower(): c for c in reader.fieldnames or []}
        label_col = next((columns[c] for c in ("emotion", "label", "class") if c in columns), None)
        if label_col is None or "pixels" not in columns:
            raise UserError(f"{path} needs the columns emotion (or label) and pixels, like FER2013's CSV.")
        for line, row in enumerate(reader, start=2):
            try:
                pixels = np.array(row[columns["pixels"]].split(), dtype=np.float32)
                side = int(round(len(pixels) ** 0.5))
                if side * side != len(pixels) or side == 0:
                    raise ValueError(f"{len(pixels)} pixels do not make a square image")
                label = row[label_col].strip()
                if not label:
                    raise ValueError("no label")
            except (ValueError, AttributeError) as exc:
                skipped.append({"path": f"{path}:{line}", "reason": str(exc)})
                continue
            usage = (row.get(columns.get("usage", ""), "") or "training").strip().lower()
            images.append(pixels.reshape(side, side, 1))
            labels.append(label)
            splits.append(FER_USAGE.get(usage, "train"))
    if not images:
        raise UserError(f"{path} has no usable rows.")
    if len({im.shape for im in images}) > 1:
        raise UserError(f"{path}: rows have different image sizes.")
    for s in skipped[:5]:
        console.warn(f"skipped {s['path']}: {s['reason']}")
    fer = label_col.strip().lower() == "emotion" and all(v.isdigit() and int(v) < 7 for v in labels)
    names = sorted(set(labels), key=lambda v: (int(v), v) if v.isdigit() else (1e9, v))
    index = {n: i for i, n in enumerate(names)}
    classes = [FER_EMOTIONS[int(n)] for n in names] if fer else names
    return ArrayDataset(str(path), classes, np.clip(np.stack(images), 0, 255).astype(np.uint8),
                        np.array([index[v] for v in labels]), np.array(splits), skipped)


def _carve(dataset: ArrayDataset, val_split: float, test_split: float, seed: int) -> ArrayDataset:
    """Carve val/test per class from train where no images were given for them."""
    given = set(dataset.splits.tolist())
    carve = {"test": test_split if "test" not in given else 0.0, "val": val_split if "val" not in given else 0.0}
    splits = dataset.splits.copy()
    for i in range(len(dataset.classes)):
        members = np.flatnonzero((dataset.labels == i) & (splits == "train"))
        order = members[np.random.default_rng([seed, i]).permutation(len(members))]
        start = 0
        for split in ("test", "val"):
            k = int(round(len(members) * carve[split]))
            k = min(k, max(0, len(members) - start - 1))  # keep at least one to train on
            splits[order[start:start + k]] = split
            start += k
    dataset.splits = splits
    if len(np.unique(dataset.labels[splits == "train"])) < 2:
        raise UserError(f"{dataset.source} has fewer than two classes to train on.")
    return dataset


def to_grayscale(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) -> (N, H, W, 1), with the same weights as the saved model's grayscale layer."""
    gray = np.tensordot(images.astype(np.float32), np.array(LUMINANCE, np.float32), axes=([-1], [0]))
    return np.clip(np.round(gray), 0, 255).astype(np.uint8)[..., None]


def materialize(dataset: ArrayDataset, root: Path) -> Path:
    """Write the arrays once as PNG files, root/KEY/{train,val,test}/CLASS/NNNNNN.png, for the folder recipe.

    The pretrained recipe reads folders (content hashes, the feature cache,
    the manifest, predict on files); arrays become such a folder, keyed by
    their content, so a second run reuses it. Grayscale images stay
    grayscale PNGs and are expanded to 3 channels on loading, like any
    grayscale photo.
    """
    import hashlib

    from PIL import Image

    digest = hashlib.sha256()
    for part in (dataset.images, dataset.labels, dataset.splits.astype("U5")):
        digest.update(np.ascontiguousarray(part).tobytes())
    digest.update("\n".join(dataset.classes).encode())
    folder = Path(root).expanduser() / digest.hexdigest()[:20]
    done = folder / ".complete"
    if done.is_file():
        return folder
    with console.progress("Writing arrays as PNG files", total=len(dataset.images)) as advance:
        for i, (image, label, split) in enumerate(zip(dataset.images, dataset.labels, dataset.splits)):
            target = folder / str(split) / dataset.classes[int(label)] / f"{i:06d}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(target)
            advance()
    done.write_text(dataset.source)
    return folder
