"""The image loader: every kind of file people have ends as RGB pixels or a reason."""

import io

import numpy as np
import pytest
from PIL import Image

from inceptune.data.images import decode_image, load_image
from inceptune.errors import ImageError


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP", "GIF", "WEBP"])
def test_common_formats_decode_to_rgb_uint8(fmt):
    img = Image.new("RGB", (30, 20), (250, 10, 10))
    arr = decode_image(encode(img, fmt))
    assert arr.shape == (20, 30, 3) and arr.dtype == np.uint8
    assert arr[10, 15, 0] > 200 and arr[10, 15, 1] < 60  # still red (GIF/JPEG are lossy)


def test_grayscale_becomes_three_equal_channels():
    arr = decode_image(encode(Image.new("L", (8, 8), 77), "PNG"))
    assert arr.shape == (8, 8, 3) and (arr == 77).all()


def test_sixteen_bit_grayscale_is_scaled_not_clipped():
    data = np.full((4, 4), 65535 // 2, dtype=np.uint16)
    arr = decode_image(encode(Image.fromarray(data), "PNG"))
    assert abs(int(arr[0, 0, 0]) - 128) <= 1  # mid-gray, not saturated white


def test_rgba_is_composited_on_white():
    img = Image.new("RGBA", (4, 4), (0, 0, 0, 0))  # fully transparent black
    assert (decode_image(encode(img, "PNG")) == 255).all()


def test_cmyk_jpeg_decodes_to_rgb():
    img = Image.new("CMYK", (10, 10), (0, 255, 255, 0))  # red in CMYK
    arr = decode_image(encode(img, "JPEG"))
    assert arr.shape == (10, 10, 3) and arr[5, 5, 0] > 200 and arr[5, 5, 1] < 60


def test_palette_image_decodes():
    img = Image.new("RGB", (10, 10), (10, 200, 10)).convert("P")
    assert decode_image(encode(img, "PNG"))[5, 5, 1] > 150


def test_exif_rotation_is_applied():
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    arr = decode_image(encode(img, "JPEG", exif=exif.tobytes()))
    assert arr.shape == (40, 20, 3)  # portrait after rotation


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in [(255, 0, 0), (0, 0, 255)]]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    arr = decode_image(buf.getvalue())
    assert arr[0, 0, 0] > 200 and arr[0, 0, 2] < 60


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file"),
    (b"this is a text file, not a picture", "not an image"),
])
def test_unusable_bytes_give_a_reason(data, reason):
    with pytest.raises(ImageError, match=reason):
        decode_image(data)


def test_truncated_jpeg_is_reported():
    data = encode(Image.new("RGB", (200, 200), (1, 2, 3)), "JPEG")
    with pytest.raises(ImageError, match="truncated|corrupt"):
        decode_image(data[: len(data) // 2])


def test_pixel_limit_is_checked_from_the_header():
    data = encode(Image.new("L", (300, 300)), "PNG")
    with pytest.raises(ImageError, match="too large: 300x300"):
        decode_image(data, max_pixels=50_000)


def test_unreadable_path_gives_a_reason(tmp_path):
    with pytest.raises(ImageError, match="cannot read"):
        load_image(tmp_path / "missing.jpg")


@pytest.mark.parametrize("shape", [(40, 40, 3), (40, 56, 3)])
def test_resize_image_matches_the_models_resizing_layer_also_when_already_at_size(shape):
    import keras

    from inceptune.data.pipeline import resize_image
    from inceptune.models.classifier import RESIZE

    image = np.random.default_rng(0).integers(0, 256, shape).astype("uint8")
    layer = keras.layers.Resizing(40, 40, **RESIZE)
    expected = keras.ops.convert_to_numpy(layer(image[None].astype("float32")))[0]
    assert np.abs(resize_image(image, 40) - expected).max() < 1e-3
