"""A corpus of awkward and bad inputs, written by the tests (no binaries committed).

`write_corpus(folder)` writes one file per case and returns {case: (path, expected)}, where
expected is "loads" or the start of the reason the file is skipped with.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _photo(size=(64, 48), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.normal(120, 40, (size[1], size[0], 3)).clip(0, 255).astype(np.uint8)
    base[size[1] // 4: 3 * size[1] // 4, size[0] // 4: 3 * size[0] // 4] = (200, 40, 40)
    return Image.fromarray(base)


def _bytes(img: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height pixels, with a few rows of zeros: tiny on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    rows = zlib.compress(b"\x00" * (width + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def exif_rotated_jpeg() -> bytes:
    img = _photo((64, 32))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees on display
    return _bytes(img, "JPEG", exif=exif.tobytes())


def animated_gif() -> bytes:
    frames = [_photo(seed=i).convert("P") for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buffer.getvalue()


def cases() -> dict[str, tuple[bytes, str]]:
    """File name -> (content, expected)."""
    jpeg = _bytes(_photo(), "JPEG", quality=90)
    sixteen = Image.fromarray((np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20))
    return {
        "plain.jpg": (jpeg, "loads"),
        "png named as.jpg": (_bytes(_photo(), "PNG"), "loads"),  # wrong extension, spaces in the name
        "café ☕ photo.png": (_bytes(_photo(), "PNG"), "loads"),  # unicode name
        "one_pixel.png": (_bytes(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"), "loads"),
        "gray.png": (_bytes(_photo().convert("L"), "PNG"), "loads"),
        "rgba.png": (_bytes(_photo().convert("RGBA"), "PNG"), "loads"),
        "cmyk.jpg": (_bytes(_photo().convert("CMYK"), "JPEG"), "loads"),
        "palette.gif": (_bytes(_photo().convert("P"), "GIF"), "loads"),
        "sixteen_bit.png": (_bytes(sixteen, "PNG"), "loads"),
        "rotated.jpg": (exif_rotated_jpeg(), "loads"),
        "animated.gif": (animated_gif(), "loads"),
        "webp.webp": (_bytes(_photo(), "WEBP"), "loads"),
        "bmp.bmp": (_bytes(_photo(), "BMP"), "loads"),
        "zero_bytes.jpg": (b"", "empty file"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated image"),
        "damaged_header.jpg": (jpeg[:300] + bytes(range(256)) * 4 + jpeg[1324:], "not an image"),
        "text.png": (b"hello, I am not an image\n" * 10, "not an image"),
        "html.jpg": (b"<html><body>404 Not Found</body></html>", "not an image"),
        "huge_20000x20000.png": (png_bomb(20000, 20000), "too large"),
        "bomb_65535x65535.png": (png_bomb(65535, 65535), "too large"),
    }


def write_corpus(folder: Path) -> dict[str, tuple[Path, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, (content, expected) in cases().items():
        path = folder / name
        path.write_bytes(content)
        written[name] = (path, expected)
    return written
