"""Test-time augmentation: the same batch seen through N fixed views, predictions averaged.

The views are deterministic (no randomness), so the same image always gets
the same answer: the full image, its mirror, then the centre and the four
corner crops (87.5% of each side), each with its mirror (the classic
"10-crop" and the full image, 12 views in all). Crops are fed at their own
size; the model's Resizing layer brings them to its input size.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from inceptune.errors import UserError

CROP = 0.875
_REGIONS = ("full", "center", "top-left", "top-right", "bottom-left", "bottom-right")
VIEWS = tuple(f"{region}{flip}" for region in _REGIONS for flip in ("", "+flip"))
MAX_VIEWS = len(VIEWS)


def view(images: np.ndarray, name: str) -> np.ndarray:
    """One named view of a batch (N, H, W, C)."""
    region, _, flip = name.partition("+")
    h, w = images.shape[1:3]
    ch, cw = max(1, round(h * CROP)), max(1, round(w * CROP))
    top = {"full": 0, "center": (h - ch) // 2}.get(region, 0 if region.startswith("top") else h - ch)
    left = {"full": 0, "center": (w - cw) // 2}.get(region, 0 if region.endswith("left") else w - cw)
    out = images if region == "full" else images[:, top:top + ch, left:left + cw]
    return out[:, :, ::-1] if flip else out


def check_tta(n: int) -> int:
    if not 1 <= n <= MAX_VIEWS:
        raise UserError(f"--tta must be between 1 (no augmentation) and {MAX_VIEWS}, got {n}.")
    return n


def with_tta(infer: Callable[[np.ndarray], np.ndarray], n: int) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap `infer` (batch -> probabilities) to average over the first `n` views."""
    check_tta(n)
    if n == 1:
        return infer
    return lambda images: np.mean([infer(np.ascontiguousarray(view(images, v))) for v in VIEWS[:n]], axis=0)
