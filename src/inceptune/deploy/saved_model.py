"""The SavedModel export: pixels in (`serve`), or encoded image files in (`serving_default`), for TF Serving.

    RUN/export/saved_model/1/     the version folder TF Serving loads (model_base_path: RUN/export/saved_model)

Signatures:
    serve              pixels (N, S, S, 3) float32 0..255 at the run's size -> the model's outputs, as Keras
    serving_default    image_bytes (N,) string: JPEG, PNG, GIF or BMP files -> probabilities (N, C) and, when
                       the run has one, ood_score (N, 1). Decoded and resized inside, the way `predict` does
                       (JPEG with the accurate integer DCT, as Pillow decodes it; bilinear with antialiasing).
                       TF Serving's REST API takes `{"instances": [{"b64": "..."}]}` for it with nothing else.

EXIF orientation is not applied inside the graph (Pillow applies it in `predict`): send upright images.
"""

from __future__ import annotations

from pathlib import Path

import keras

BYTES_INPUT = "image_bytes"


def write_saved_model(serving: keras.Model, path: Path, image_size: int) -> None:
    import tensorflow as tf

    def pixels_of(data):
        image = tf.cond(tf.io.is_jpeg(data),
                        lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
                        lambda: tf.io.decode_image(data, channels=3, expand_animations=False))
        image = tf.cast(image, tf.float32)
        return tf.image.resize(image, (image_size, image_size), method="bilinear", antialias=True)

    def from_bytes(image_bytes):
        pixels = tf.map_fn(pixels_of, image_bytes,
                           fn_output_signature=tf.TensorSpec((image_size, image_size, 3), tf.float32))
        outputs = serving(pixels, training=False)
        if isinstance(outputs, (list, tuple)):
            return {"probabilities": outputs[0], "ood_score": outputs[1]}
        return {"probabilities": outputs}

    archive = keras.export.ExportArchive()
    archive.track(serving)
    archive.add_endpoint("serve", lambda pixels: serving(pixels, training=False), input_signature=[
        tf.TensorSpec((None, image_size, image_size, 3), tf.float32, name="pixels")])
    archive.add_endpoint("serving_default", from_bytes,
                         input_signature=[tf.TensorSpec((None,), tf.string, name=BYTES_INPUT)])
    archive.write_out(str(path), verbose=False)
