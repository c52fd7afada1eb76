"""Photo quality by CleanVision: blurred, too dark or too bright, tiny, extreme aspect ratio, near-constant.

CleanVision scores each photo (0 to 1, low is bad) and flags those below its
thresholds; its `odd_size` means unusually small or large, and only the
small ones are an issue here.
"""

from __future__ import annotations

import os
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO

import numpy as np

# CleanVision's issue type -> ours
ISSUES = {"blurry": "blurry", "dark": "dark", "light": "bright", "odd_size": "small",
          "odd_aspect_ratio": "odd_aspect", "low_information": "low_information"}


def find_quality_issues(paths: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{our issue: (flagged, score)} per photo in `paths`' order; score = 1 - CleanVision's (higher is worse)."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # CleanVision's own progress bars
    from cleanvision import Imagelab

    lab = Imagelab(filepaths=list(paths))
    with redirect_stdout(StringIO()), redirect_stderr(StringIO()):
        lab.find_issues({name: {} for name in ISSUES}, n_jobs=min(4, os.cpu_count() or 1), verbose=False)
    table = lab.issues.reindex(list(paths))
    out = {}
    for theirs, ours in ISSUES.items():
        flagged = table[f"is_{theirs}_issue"].fillna(False).to_numpy(bool)
        score = 1.0 - table[f"{theirs}_score"].fillna(1.0).to_numpy(float)
        out[ours] = (flagged, score)
    if "small" in out:  # odd_size flags the unusually large too
        sizes = np.array([_area(p) for p in paths], dtype=float)
        out["small"] = (out["small"][0] & (sizes < np.median(sizes)), out["small"][1])
    return out


def _area(path: str) -> int:
    from PIL import Image

    with Image.open(path) as img:
        return img.size[0] * img.size[1]
