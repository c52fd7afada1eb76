"""`fit-features`, and what uses its result: a scikit-learn classifier on a features file.

    features file -> standardise + classifier, small grid, stratified k-fold CV
        -> MODEL/classifier.skops (skops: loads without running pickled code)
           MODEL/features.json (how to compute the vectors, the class names, the CV score)

`predict MODEL images` computes the vectors on the fly the same way.
`similar` searches a features file for the nearest vectors (cosine, exact).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from inceptune import console
from inceptune.atomic import atomic_path, atomic_write_json
from inceptune.errors import UserError
from inceptune.features.files import FeatureTable, read_features_file
from inceptune.settings.schema import DEFAULTS

CLASSIFIERS = ("logreg", "svm", "knn", "mlp")


def _candidates(name: str, seed: int, inner_folds: int):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import SVC

    return {
        "logreg": (LogisticRegression(max_iter=3000), {"clf__C": [0.01, 0.1, 1.0]}),
        # Probabilities by Platt scaling on held-out folds (what SVC(probability=True), now deprecated, did inside).
        "svm": (CalibratedClassifierCV(SVC(random_state=seed), ensemble=False, cv=inner_folds),
                {"clf__estimator__C": [0.1, 1.0, 10.0], "clf__estimator__kernel": ["linear", "rbf"]}),
        "knn": (KNeighborsClassifier(), {"clf__n_neighbors": [3, 5, 9], "clf__weights": ["uniform", "distance"]}),
        "mlp": (MLPClassifier(max_iter=500, early_stopping=True, random_state=seed),
                {"clf__hidden_layer_sizes": [(256,), (512,)], "clf__alpha": [1e-4, 1e-2]}),
    }[name]


def fit_features(features: str, classifier: str = "logreg", out: str | None = None, folds: int = 5,
                 seed: int = DEFAULTS["seed"]) -> dict:
    """Fit `classifier` on a labelled features file with a small grid and stratified `folds`-fold CV.

    Examples:
        >>> inceptune.fit_features("flowers.parquet", "logreg", out="models/flowers-logreg")
        {'cv_accuracy_mean': 0.89, 'cv_accuracy_std': 0.02, ...}
    """
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if classifier not in CLASSIFIERS:
        raise UserError(f"Unknown classifier '{classifier}'; expected one of {', '.join(CLASSIFIERS)}.")
    table = read_features_file(features).labelled()
    classes, counts = np.unique(table.labels, return_counts=True) if table.labels else ([], [])
    if len(classes) < 2:
        raise UserError(f"{features} needs labelled rows of at least two classes (extract from class folders).")
    if counts.min() < folds:
        raise UserError(f"Class '{classes[counts.argmin()]}' has {counts.min()} rows, fewer than --folds {folds}.")
    inner = min(5, counts.min() * (folds - 1) // folds)  # the smallest class in an outer fold's training rows
    if classifier == "svm" and inner < 2:
        raise UserError(f"svm calibrates its probabilities on held-out rows: class '{classes[counts.argmin()]}' needs "
                        f"at least {-(-2 * folds // (folds - 1))} rows with --folds {folds}, and has {counts.min()}.")
    estimator, grid = _candidates(classifier, seed, max(2, inner))
    search = GridSearchCV(Pipeline([("scale", StandardScaler()), ("clf", estimator)]), grid, scoring="accuracy",
                          cv=StratifiedKFold(folds, shuffle=True, random_state=seed), refit=True)
    console.info(f"Fitting {classifier} on {len(table.labels)} rows x {table.vectors.shape[1]} features "
                 f"({len(classes)} classes), {folds}-fold CV over {_grid_size(grid)} settings...")
    search.fit(table.vectors, np.array(table.labels))
    best = search.best_index_
    result = {
        "classifier": classifier, "best_params": {k.removeprefix("clf__").removeprefix("estimator__"): v
                                                     for k, v in search.best_params_.items()},
        "cv_folds": folds, "cv_accuracy_mean": float(search.cv_results_["mean_test_score"][best]),
        "cv_accuracy_std": float(search.cv_results_["std_test_score"][best]),
        "cv_accuracy_per_fold": [float(search.cv_results_[f"split{k}_test_score"][best]) for k in range(folds)],
        "rows": len(table.labels), "classes": [str(c) for c in search.best_estimator_.classes_],
        "features": {k: table.meta.get(k) for k in ("layer", "pooling", "image_size", "weights",
                                                    "weights_fingerprint")},
    }
    if out:
        _save(Path(out), search.best_estimator_, result)
        result["out"] = str(out)
    console.info(f"{folds}-fold accuracy {result['cv_accuracy_mean']:.4f} ± {result['cv_accuracy_std']:.4f} "
                 f"with {result['best_params']}")
    return result


def _grid_size(grid: dict) -> int:
    return int(np.prod([len(v) for v in grid.values()]))


def _save(folder: Path, estimator, result: dict) -> None:
    import skops.io as sio

    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "classifier.skops") as tmp:
        sio.dump(estimator, tmp)
    atomic_write_json(folder / "features.json", result)


def is_features_model(path: str | os.PathLike) -> bool:
    return (Path(path) / "classifier.skops").is_file() and (Path(path) / "features.json").is_file()


def load_features_model(folder: str | os.PathLike):
    """(estimator, description); skops loads only the scikit-learn and numpy types it trusts."""
    import skops.io as sio

    folder = Path(folder)
    description = json.loads((folder / "features.json").read_text())
    untrusted = [t for t in sio.get_untrusted_types(file=folder / "classifier.skops")
                 if not t.startswith(("sklearn.", "numpy."))]
    if untrusted:
        raise UserError(f"{folder}/classifier.skops holds types inceptune does not trust ({untrusted[0]}).")
    trusted = sio.get_untrusted_types(file=folder / "classifier.skops")
    return sio.load(folder / "classifier.skops", trusted=trusted), description


class Embedder:
    """Images -> vectors exactly as a features file's metadata says they were made."""

    def __init__(self, meta: dict, weights: str | None = None):
        from inceptune.features.extract import build_extractor, pooled_kind
        from inceptune.models.backbone import build_backbone
        from inceptune.models.weights import resolve_weights

        resolved = resolve_weights(weights or meta["weights"])
        if meta.get("weights_fingerprint") and resolved.fingerprint != meta["weights_fingerprint"]:
            raise UserError(f"The weights {resolved.describe()} are not the ones the features were made with "
                            f"({meta['weights']}); pass --weights with that file.")
        self.image_size = int(meta["image_size"])
        self.kind = pooled_kind(meta["layer"], meta["pooling"])
        self.extractor = build_extractor(build_backbone(resolved, self.image_size), [self.kind])

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self.extractor.predict_on_batch(images)[self.kind], np.float32)


def predict_with_features_model(model: str, inputs, top: int = 5, batch_size: int = DEFAULTS["batch_size"],
                                weights: str | None = None) -> list[dict]:
    from inceptune.inference.inputs import expand_inputs
    from inceptune.inference.ranking import rank_classes, run_batches

    estimator, description = load_features_model(model)
    embed = Embedder(description["features"], weights)
    classes = [str(c) for c in estimator.classes_]
    paths = expand_inputs([inputs] if isinstance(inputs, str) else list(inputs))

    return run_batches(paths, embed.image_size, batch_size, lambda x: estimator.predict_proba(embed(x)),
                       lambda probs: rank_classes(classes, probs, top))


def similar(features: str, image: str, k: int = 5, weights: str | None = None) -> list[dict]:
    """The k rows of a features file nearest to `image` by cosine distance (exact search).

    Exact search over N vectors costs O(N D) per query: instant for thousands,
    a second or so for a million 2048-d vectors. Past that, an index such as
    FAISS (IVF or HNSW, on CPU or GPU) answers approximately in milliseconds.
    """
    import hashlib

    from sklearn.neighbors import NearestNeighbors

    from inceptune.data.images import load_image
    from inceptune.data.pipeline import resize_image
    from inceptune.errors import ImageError
    from inceptune.storage import read_bytes

    table: FeatureTable = read_features_file(features)
    try:
        digest = hashlib.sha256(read_bytes(image)).hexdigest()
        pixels = load_image(image)
    except (OSError, ImageError) as exc:
        raise UserError(f"{image} could not be read ({getattr(exc, 'reason', None) or exc}).") from None
    if digest in table.hashes:  # already in the file: no need to run the network
        query = table.vectors[table.hashes.index(digest)][None]
    else:
        embed = Embedder(table.meta, weights)
        query = embed(resize_image(pixels, embed.image_size)[None])
    k = min(k, len(table.paths))
    search = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(table.vectors)
    distances, indices = search.kneighbors(query)
    return [{"path": table.paths[i], "label": table.labels[i], "distance": float(d)}
            for d, i in zip(distances[0], indices[0])]
