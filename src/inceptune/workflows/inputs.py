"""The data of a training run: a folder of class folders, a multi-label CSV, or arrays written as a folder."""

from __future__ import annotations

from pathlib import Path

from inceptune import console
from inceptune.data.arrays import is_array_source, load_arrays, materialize
from inceptune.data.dataset import Dataset, load_dataset
from inceptune.data.multilabel import is_multilabel_csv, load_multilabel_csv
from inceptune.features.cache import local_cache_root
from inceptune.settings import Settings
from inceptune.storage import is_remote, local_path


def load_training_data(s: Settings, test_split: float | None = None) -> tuple[Dataset, dict]:
    """The dataset, and where it came from (`data_kind`, and the folder arrays were written to)."""
    d = s.data
    test = d.test_split if test_split is None else test_split
    fixes = {"exclude": d.exclude, "relabel": d.relabel, "group_by": d.group_by}
    if is_remote(d.data):  # an object store's folder of class folders (data/remote_tree.py)
        return load_dataset(d.data, d.val_split, test, d.seed, d.max_pixels, **fixes), {"data_kind": "images"}
    data = local_path(d.data)  # a path, or a file:// URL (storage.py)
    if is_multilabel_csv(data):
        return load_multilabel_csv(data, d.val_split, test, d.seed, d.max_pixels, d.exclude, d.group_by), \
            {"data_kind": "multilabel-csv"}
    if is_array_source(data):
        folder = arrays_as_folder(s)
        return load_dataset(folder, d.val_split, test, d.seed, d.max_pixels, **fixes), \
            {"data_kind": "arrays", "array_folder": str(folder)}
    return load_dataset(data, d.val_split, test, d.seed, d.max_pixels, **fixes), {"data_kind": "images"}


def arrays_as_folder(s: Settings) -> Path:
    """X.npy/y.npy, .npz or a FER-style CSV for the pretrained recipe: written once as PNG class folders."""
    d = s.data
    arrays = load_arrays(d.data, d.val_split, d.test_split, d.seed)
    folder = materialize(arrays, local_cache_root(s.run.cache_dir).parent / "arrays")
    console.info(f"Arrays {d.data}: {len(arrays.images)} images of shape {arrays.images.shape[1:]}, "
                 f"as PNG files in {folder}" + (" (grayscale, expanded to RGB)" if arrays.images.shape[-1] == 1
                                               else ""))
    return folder
