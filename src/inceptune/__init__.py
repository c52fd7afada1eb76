"""inceptune: transfer learning with Inception networks in Keras 3.

The Python API uses the CLI's words:

    >>> import inceptune
    >>> result = inceptune.train("photos/", out="runs/photos")
    >>> model = inceptune.load("runs/photos")      # loaded once, on the fastest runtime present
    >>> model.predict(["cat.jpg"], top=3)
    >>> inceptune.predict("imagenet", ["cat.jpg"], top=5)  # as `inceptune predict imagenet cat.jpg`

Every command of the `inceptune` command line has its twin here, taking the same inputs (`inceptune cache
info` is `cache_info`, `features` is `extract_features_file`, `cv` is `cross_validate`).
"""

import os as _os

_os.environ.setdefault("KERAS_BACKEND", "tensorflow")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter

from inceptune.vocabulary.version import __version__  # noqa: E402, F401 (the package's version)

_API = {
    "train": "inceptune.workflows.train",
    "Settings": "inceptune.settings",
    "load": "inceptune.inference.model",
    "TrainedModel": "inceptune.inference.model",
    "predict": "inceptune.workflows.predict",
    "predict_imagenet": "inceptune.inference.imagenet",
    "evaluate": "inceptune.inference.model",
    "cross_validate": "inceptune.workflows.cv",
    "lr_find": "inceptune.workflows.lr_find",
    "audit": "inceptune.workflows.audit",
    "tune": "inceptune.workflows.tune",
    "serve": "inceptune.serving.app",
    "explain": "inceptune.inference.explain",
    "export": "inceptune.deploy.export",
    "build": "inceptune.architectures.build",
    "load_dataset": "inceptune.data.dataset",
    "extract_features_file": "inceptune.workflows.features_file",
    "fit_features": "inceptune.workflows.fit_features",
    "similar": "inceptune.workflows.fit_features",
    "demo": "inceptune.workflows.demo",
    "cache_info": "inceptune.features.cache_admin",
    "prune_cache": "inceptune.features.cache_admin",
    "UserError": "inceptune.errors",
}
__all__ = sorted(_API)


def __getattr__(name):  # imported on first use: `import inceptune` stays fast, without TensorFlow
    if name in _API:
        import importlib

        from inceptune.console import import_tensorflow_quietly

        import_tensorflow_quietly()
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'inceptune' has no attribute {name!r}")
