"""Decode one image file into an RGB uint8 array, or say why it cannot be used.

Handles the formats people actually have: JPEG, PNG, BMP, GIF and WebP;
grayscale, palette, RGBA (composited on white), CMYK, 16-bit and
EXIF-rotated images; animated GIFs (first frame). Pixel-count limits are
checked from the header before any pixel is decoded.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from inceptune.errors import ImageError
from inceptune.storage import read_bytes
from inceptune.vocabulary.limits import DEFAULT_MAX_PIXELS

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})

# inceptune checks pixel counts itself (with its own, configurable limit and
# a readable reason), so Pillow's global decompression-bomb guard is lifted.
Image.MAX_IMAGE_PIXELS = None


def has_image_extension(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes into an (H, W, 3) uint8 RGB array.

    Raises:
        ImageError: with a short reason when the bytes are not a usable image.
    """
    if not data:
        raise ImageError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageError(
                        f"too large: {width}x{height} pixels is over the limit of {max_pixels:,}"
                    )
                if width < 1 or height < 1:
                    raise ImageError(f"invalid size {width}x{height}")
                img.seek(0)  # animated images: the first frame
                img.load()
                img = _upright(img)
                return _to_rgb_array(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image (content is not a recognised image format)") from None
    except Exception as exc:  # Pillow raises many types for damaged files
        message = str(exc) or type(exc).__name__
        if "truncated" in message.lower():
            raise ImageError("truncated image (the file ends early)") from None
        raise ImageError(f"corrupt image ({message})") from None


def load_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read and decode an image file; see `decode_image`."""
    try:
        data = read_bytes(path)  # a path, a file:// URL or an object (storage.py)
    except OSError as exc:
        raise ImageError(f"cannot read file ({exc.strerror or exc})") from None
    return decode_image(data, max_pixels=max_pixels)


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation, as a phone's gallery would show the photo."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block should not cost the image
        return img


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode.startswith("I") or mode == "F":
        # 16/32-bit integer or float grayscale: Pillow's convert("RGB") clips
        # these at 255, so scale to 8 bits ourselves.
        gray = np.asarray(img, dtype=np.float64)
        top = 65535.0 if gray.max(initial=0) > 255 or mode.startswith("I;16") else 255.0
        gray = np.clip(np.rint(gray * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(arr)
