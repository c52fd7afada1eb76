"""features, fit-features and similar: feature vectors as a product, and what uses them."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

import inceptune
from inceptune.cli.options import BatchOpt, CacheOpt, ImageSizeOpt, RayAddressOpt, WeightsOpt
from inceptune.settings import DEFAULTS


def features(
    data: Annotated[str, typer.Argument(help="Folder of images (class subfolders give labels), or image files.")],
    out: Annotated[str, typer.Option("--out", "-o", help="FILE.parquet (streamed) or FILE.npz.")],
    layer: Annotated[str, typer.Option(help="Inception block whose output is pooled (mixed0..mixed10).")] = "mixed10",
    pooling: Annotated[str, typer.Option(help="avg or max over space.")] = "avg",
    image_size: ImageSizeOpt = DEFAULTS["image_size"],
    weights: WeightsOpt = DEFAULTS["weights"],
    batch_size: BatchOpt = DEFAULTS["batch_size"],
    shard: Annotated[str, typer.Option(help="i/N: only this deterministic 1/N of the files (for fan-out).")] = "0/1",
    cache_dir: CacheOpt = None,
    engine: Annotated[str, typer.Option(help="local, or ray (Ray Data with a pool of model actors).")] = "local",
    ray_address: RayAddressOpt = None,
) -> None:
    """Inception-v3 feature vectors, one row per image: path, label, content hash, vector."""
    inceptune.extract_features_file(data, out, layer=layer, pooling=pooling, image_size=image_size, weights=weights,
                                    batch_size=batch_size, shard=shard, cache_dir=cache_dir, engine=engine,
                                    ray_address=ray_address)


def fit_features(
    features_file: Annotated[str, typer.Argument(metavar="FEATURES", help="A features file from `inceptune features`.")],
    classifier: Annotated[str, typer.Option(help="logreg, svm, knn or mlp.")] = "logreg",
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Folder for the fitted model (usable by predict).")] = None,
    folds: Annotated[int, typer.Option(help="Stratified cross-validation folds.")] = 5,
    seed: Annotated[int, typer.Option(help="Fixes the folds and the classifiers' randomness.")] = DEFAULTS["seed"],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Fit a scikit-learn classifier on a features file (small grid, stratified k-fold CV)."""
    result = inceptune.fit_features(features_file, classifier, out=out, folds=folds, seed=seed)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{classifier}: {folds}-fold accuracy {result['cv_accuracy_mean']:.4f} ± {result['cv_accuracy_std']:.4f} "
              f"({result['best_params']})")


def similar(
    features_file: Annotated[str, typer.Argument(metavar="FEATURES", help="A features file.")],
    image: Annotated[str, typer.Argument(help="The query image.")],
    k: Annotated[int, typer.Option("--k", help="How many neighbours.")] = 5,
    weights: Annotated[Optional[str], typer.Option(help="Weights file, when the features file names another machine's path.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The images of a features file nearest to IMAGE (cosine distance, exact search)."""
    results = inceptune.similar(features_file, image, k=k, weights=weights)
    if as_json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(f"{r['distance']:.4f}  {r['path']}" + (f"  ({r['label']})" if r["label"] else ""))
