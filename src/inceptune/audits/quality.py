"""Photo quality by CleanVision: blurred, too dark or too bright, tiny, extreme aspect ratio, near-constant.

CleanVision scores each photo (0 to 1, low is bad) and flags those below its
thresholds; its `odd_size` means unusually small or large, and only the
small ones are an issue here, with those whose shorter side is below
Inception-v3's smallest input (75 pixels).
"""

from __future__ import annotations

import os
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO

import numpy as np

from inceptune.vocabulary.inception import MIN_IMAGE_SIZE

# CleanVision's issue type -> ours
ISSUES = {"blurry": "blurry", "dark": "dark", "light": "bright", "odd_size": "small",
          "odd_aspect_ratio": "odd_aspect", "low_information": "low_information"}


def find_quality_issues(paths: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{our issue: (flagged, score)} per photo in `paths`' order; score = 1 - CleanVision's (higher is worse)."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # CleanVision's own progress bars
    from cleanvision import Imagelab

    lab = Imagelab(filepaths=list(paths))
    with redirect_stdout(StringIO()), redirect_stderr(StringIO()):
        # n_jobs=1: CleanVision's pool forks, and a fork of a process that runs TensorFlow's threads can hang
        lab.find_issues({name: {} for name in ISSUES}, n_jobs=1, verbose=False)
    table = lab.issues.reindex(list(paths))
    out = {}
    for theirs, ours in ISSUES.items():
        flagged = table[f"is_{theirs}_issue"].fillna(False).to_numpy(bool)
        score = 1.0 - table[f"{theirs}_score"].fillna(1.0).to_numpy(float)
        out[ours] = (flagged, score)
    # odd_size flags the unusually large too, and its rule (3 IQRs below the first quartile) rarely reaches
    # below zero when sizes vary; a photo whose shorter side is under Inception-v3's smallest input is small
    sides = np.array([_sides(p) for p in paths], dtype=float).reshape(-1, 2)
    areas, shorter = sides.prod(axis=1), sides.min(axis=1)
    tiny = shorter < MIN_IMAGE_SIZE
    flagged, score = out["small"]
    out["small"] = ((flagged & (areas < np.median(areas))) | tiny,
                    np.where(tiny, np.maximum(score, 1.0 - shorter / MIN_IMAGE_SIZE), score))
    return out


def _sides(path: str) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as img:
        return img.size
