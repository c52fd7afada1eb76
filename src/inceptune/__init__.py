"""inceptune: transfer learning with Inception networks in Keras 3.

The Python API uses the CLI's words:

    >>> import inceptune
    >>> result = inceptune.train("photos/", out="runs/photos")
    >>> model = inceptune.load("runs/photos")      # loaded once, on the fastest runtime present
    >>> model.predict(["cat.jpg"], top=3)
    >>> inceptune.predict_imagenet(["cat.jpg"], top=5)
"""

import os as _os

_os.environ.setdefault("KERAS_BACKEND", "tensorflow")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter

__version__ = "0.5.0"

_API = {
    "train": "inceptune.training.trainer",
    "Settings": "inceptune.settings",
    "load": "inceptune.inference.model",
    "TrainedModel": "inceptune.inference.model",
    "predict": "inceptune.inference.model",
    "predict_imagenet": "inceptune.inference.imagenet",
    "evaluate": "inceptune.inference.model",
    "cross_validate": "inceptune.training.cv",
    "lr_find": "inceptune.training.lr_find",
    "audit": "inceptune.audits.run",
    "tune": "inceptune.training.tune",
    "serve": "inceptune.deploy.server",
    "explain": "inceptune.inference.explain",
    "export": "inceptune.deploy.export",
    "load_dataset": "inceptune.data.dataset",
    "extract_features_file": "inceptune.features.export",
    "fit_features": "inceptune.features.classify",
    "similar": "inceptune.features.classify",
    "demo": "inceptune.demo",
    "cache_info": "inceptune.features.cache_admin",
    "prune_cache": "inceptune.features.cache_admin",
    "UserError": "inceptune.errors",
}
__all__ = sorted(_API)


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up messages (oneDNN, CUDA probing) kept off the terminal."""
    import sys

    if "tensorflow" in sys.modules:
        return
    saved = _os.dup(2)
    try:
        with open(_os.devnull, "w") as devnull:
            _os.dup2(devnull.fileno(), 2)
            import tensorflow as tf
    finally:
        _os.dup2(saved, 2)
        _os.close(saved)
    tf.get_logger().setLevel("ERROR")


def __getattr__(name):  # imported on first use: `import inceptune` stays fast, without TensorFlow
    if name in _API:
        import importlib

        _import_tensorflow_quietly()
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'inceptune' has no attribute {name!r}")
