"""The `inceptune` command: parses arguments and delegates to the Python API.

User errors print one sentence and exit 2; an interrupted run exits 130
and keeps what is done (the feature cache). Bugs raise with a traceback.
"""

from __future__ import annotations

import csv
import errno
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

import inceptune  # sets TensorFlow's logging defaults before anything imports it
from inceptune import console
from inceptune.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Transfer learning with Inception-v3 (train, predict, evaluate, cv, explain), and Inception networks from scratch (build, train --arch).")

WeightsOpt = Annotated[str, typer.Option(
    "--weights", help="imagenet (Keras' file, or the file named by INCEPTUNE_WEIGHTS), none, or a PATH to a weights file.")]


@app.callback()
def _global(quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only results and errors.")] = False) -> None:
    console.set_quiet(quiet)


# Options shared by `train` and `cv` (cv runs the train recipe once per fold).
ImageSizeOpt = Annotated[int, typer.Option(help="Images are resized to this square (75 or more).")]
ValSplitOpt = Annotated[float, typer.Option(help="Fraction of each class for validation when there is no val/ folder.")]
SeedOpt = Annotated[int, typer.Option(help="Fixes splits and initialisation.")]
EpochsOpt = Annotated[int, typer.Option(help="Phase 1 epochs (head on cached features).")]
LrOpt = Annotated[float, typer.Option("--lr", help="Phase 1 learning rate.")]
BatchOpt = Annotated[int, typer.Option(help="Batch size for extraction and training.")]
DropoutOpt = Annotated[float, typer.Option(help="Dropout before the head's Dense layer.")]
HeadUnitsOpt = Annotated[Optional[list[int]], typer.Option("--head-units", help="Hidden Dense layer size (repeatable), e.g. 1024.")]
UnfreezeOpt = Annotated[str, typer.Option(help="First block to fine-tune in phase 2 (mixed0..mixed10).")]
FineTuneEpochsOpt = Annotated[int, typer.Option(help="Phase 2 epochs; 0 skips fine-tuning.")]
FineTuneLrOpt = Annotated[float, typer.Option(help="Phase 2 learning rate.")]
PatienceOpt = Annotated[int, typer.Option(help="Phase 2 early-stopping patience (epochs without a lower val loss); at least 10 with --arch.")]
CacheOpt = Annotated[Optional[str], typer.Option(help="Feature cache folder (default $INCEPTUNE_CACHE or ~/.cache/inceptune/features).")]
MaxPixelsOpt = Annotated[int, typer.Option(help="Skip images with more pixels than this.")]
OverwriteOpt = Annotated[bool, typer.Option(help="Replace a finished run in --out.")]
UnsafeOpt = Annotated[bool, typer.Option("--unsafe", help="Load a model that carries Python code (Lambda layers): only for files you trust.")]
TtaOpt = Annotated[int, typer.Option("--tta", help="Average over N deterministic views (flips, crops); 1 = none, up to 12.")]


@app.command()
def train(
    data: Annotated[str, typer.Argument(help="Folder of class subfolders, or of train/ (val/, test/) folders; or X.npy+y.npy (X_train.npy...), .npz or a FER-style CSV.")],
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Run folder to write (default runs/DATA-TIME).")] = None,
    weights: WeightsOpt = "imagenet",
    from_model: Annotated[Optional[str], typer.Option("--from", help="Continue from a saved model: a run folder, a .keras file or a legacy .h5 full model (its Inception-v3 base; its head too if the classes are the same).")] = None,
    unsafe: UnsafeOpt = False,
    image_size: ImageSizeOpt = 299,
    val_split: ValSplitOpt = 0.2,
    test_split: Annotated[float, typer.Option(help="Fraction of each class held out for testing when there is no test/ folder.")] = 0.1,
    seed: SeedOpt = 1337,
    epochs: EpochsOpt = 20,
    learning_rate: LrOpt = 1e-3,
    batch_size: BatchOpt = 32,
    dropout: DropoutOpt = 0.2,
    head_units: HeadUnitsOpt = None,
    augment: Annotated[str, typer.Option(help="Augmentation policy: none, light, default (the seeds' rotation, shifts, shear, zoom, flip; plus brightness/contrast) or strong.")] = "none",
    aug: Annotated[Optional[list[str]], typer.Option("--aug", help="Override one augmentation parameter, KEY=VALUE (repeatable): rotation (degrees), shift, shear, zoom, flip, brightness, contrast.")] = None,
    aug_views: Annotated[Optional[int], typer.Option(help="Augmented views cached per training image (default 4 with --augment): the base runs 1 + K times per image in all.")] = None,
    class_weight: Annotated[Optional[str], typer.Option(help="auto (inverse class frequency) or NAME=WEIGHT pairs, comma-separated.")] = None,
    label_smoothing: Annotated[float, typer.Option(help="Label smoothing of the cross-entropy (e.g. 0.1).")] = 0.0,
    unfreeze_from: UnfreezeOpt = "mixed9",
    unfreeze_top: Annotated[Optional[int], typer.Option(help="Instead of --unfreeze-from: fine-tune the top N inception blocks (2 = mixed9 on).")] = None,
    unfreeze_every: Annotated[int, typer.Option(help="Gradual unfreezing: the top block first, one more block below every M epochs down to --unfreeze-from (0: all at once).")] = 0,
    block_lr_decay: Annotated[float, typer.Option(help="Discriminative learning rates: each block below the top trains at F times the rate of the block above (1: off).")] = 1.0,
    train_batchnorm: Annotated[bool, typer.Option("--train-batchnorm", help="Train the BatchNorm layers of the unfrozen blocks (batch statistics) instead of keeping them in inference mode.")] = False,
    fine_tune_augment: Annotated[str, typer.Option(help="Augmentation in phase 2: online (fresh each epoch, runs the whole base), views (the cached views, fast), none; auto = online with --augment.")] = "auto",
    schedule: Annotated[str, typer.Option(help="Learning-rate schedule of both phases: constant, cosine or step (x0.1 at 1/2 and 3/4).")] = "constant",
    warmup_epochs: Annotated[int, typer.Option(help="Linear warm-up epochs (from a tenth of the rate) before the schedule, in each phase.")] = 0,
    fine_tune_epochs: FineTuneEpochsOpt = 10,
    fine_tune_lr: FineTuneLrOpt = 1e-5,
    patience: PatienceOpt = 3,
    cache_dir: CacheOpt = None,
    max_pixels: MaxPixelsOpt = 100_000_000,
    overwrite: OverwriteOpt = False,
    precision: Annotated[str, typer.Option(help="float32, or mixed: float16 compute on GPUs (bfloat16 on CPUs) with FP32 weights and outputs.")] = "float32",
    distribute: Annotated[str, typer.Option(help="auto (MirroredStrategy over 2+ local GPUs), none, mirrored, or multi-worker (MultiWorkerMirroredStrategy, cluster from TF_CONFIG).")] = "auto",
    resume: Annotated[bool, typer.Option("--resume", help="Continue the interrupted run in --out from its last finished epoch (same settings).")] = False,
    tensorboard: Annotated[bool, typer.Option(help="Write TensorBoard logs to RUN/tensorboard.")] = True,
    track: Annotated[Optional[str], typer.Option(help="Also log the run to an experiment tracker: mlflow.")] = None,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db).")] = None,
    arch: Annotated[Optional[str], typer.Option(help="Train this network from scratch (with --weights none): inception-v3, googlenet, mini-inception, single-module.")] = None,
    channels: Annotated[int, typer.Option(help="With --arch: 1 for a grayscale network, 3 for RGB.")] = 3,
    width: Annotated[float, typer.Option(help="With --arch inception-v3 or mini-inception: filter multiplier.")] = 1.0,
) -> None:
    """Train a classifier: cached features, the head, then fine-tuning of the top blocks; writes report.html."""
    settings = {k: v for k, v in locals().items() if k != "data"}
    settings["head_units"] = tuple(head_units or ())
    settings["aug"] = tuple(aug or ())
    from inceptune.tracking import check_tracker

    check_tracker(track)
    inceptune.train(data, **settings)


@app.command()
def cv(
    data: Annotated[str, typer.Argument(help="Folder of class subfolders (given splits are pooled).")],
    folds: Annotated[int, typer.Option(help="Number of stratified folds.")] = 5,
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Folder for cv.json and report.html (default runs/cv-DATA-TIME).")] = None,
    weights: WeightsOpt = "imagenet",
    image_size: ImageSizeOpt = 299,
    val_split: ValSplitOpt = 0.2,
    seed: SeedOpt = 1337,
    epochs: EpochsOpt = 20,
    learning_rate: LrOpt = 1e-3,
    batch_size: BatchOpt = 32,
    dropout: DropoutOpt = 0.2,
    head_units: HeadUnitsOpt = None,
    unfreeze_from: UnfreezeOpt = "mixed9",
    fine_tune_epochs: FineTuneEpochsOpt = 10,
    fine_tune_lr: FineTuneLrOpt = 1e-5,
    patience: PatienceOpt = 3,
    cache_dir: CacheOpt = None,
    max_pixels: MaxPixelsOpt = 100_000_000,
    overwrite: OverwriteOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print cv.json.")] = False,
) -> None:
    """Stratified k-fold cross-validation of the whole train recipe, reusing cached features across folds."""
    settings = {k: v for k, v in locals().items() if k not in ("data", "folds", "as_json")}
    settings["head_units"] = tuple(head_units or ())
    if out is None:
        settings.pop("out")
    result = inceptune.cross_validate(data, folds=folds, **settings)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    for name, s in result["summary"].items():
        print(f"{name:<18} {s['mean']:.4f} ± {s['std']:.4f}")


@app.command("lr-find")
def lr_find(
    data: Annotated[str, typer.Argument(help="The training data, as for train.")],
    phase: Annotated[str, typer.Option(help="head (phase 1) or fine-tune (phase 2, from --unfreeze-from).")] = "head",
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="The plot (PNG).")] = None,
    min_lr: Annotated[float, typer.Option(help="First learning rate.")] = 1e-7,
    max_lr: Annotated[float, typer.Option(help="Last learning rate.")] = 1.0,
    steps: Annotated[int, typer.Option(help="Mini-batches, one learning rate each.")] = 100,
    weights: WeightsOpt = "imagenet",
    image_size: ImageSizeOpt = 299,
    val_split: ValSplitOpt = 0.2,
    seed: SeedOpt = 1337,
    batch_size: BatchOpt = 32,
    head_units: HeadUnitsOpt = None,
    unfreeze_from: UnfreezeOpt = "mixed9",
    cache_dir: CacheOpt = None,
) -> None:
    """Learning-rate range test: loss against a growing learning rate, a plot, and a suggested value."""
    finding = inceptune.lr_find(data, phase=phase, out=out, min_lr=min_lr, max_lr=max_lr, steps=steps,
                                weights=weights, image_size=image_size, val_split=val_split, seed=seed,
                                batch_size=batch_size, head_units=tuple(head_units or ()),
                                unfreeze_from=unfreeze_from, cache_dir=cache_dir)
    low, high = finding.fastest_range
    print(f"suggested learning rate {finding.suggestion:.3g} (fastest fall between {low:.3g} and {high:.3g}); "
          f"plot {finding.plot}")


@app.command()
def predict(
    model: Annotated[str, typer.Argument(help="A run folder, a fit-features model folder, or 'imagenet' for ImageNet's 1000 classes.")],
    inputs: Annotated[list[str], typer.Argument(help="Image files and/or folders.")],
    top: Annotated[int, typer.Option("--top", "-k", help="Classes to show per image.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
    weights: WeightsOpt = "imagenet",
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 32,
    tta: TtaOpt = 1,
    unsafe: UnsafeOpt = False,
    runtime: Annotated[str, typer.Option(help="auto (fastest FP32 export present, else keras), keras, onnx, openvino, or a quantized export such as onnx-int8.")] = "auto",
    engine: Annotated[str, typer.Option(help="local, or ray (Ray Data with a pool of model actors) for a run folder.")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster to join (default: $RAY_ADDRESS, else start a local one).")] = None,
) -> None:
    """Rank classes for images with a trained run, or with ImageNet's classifier."""
    from inceptune.features.classify import is_features_model, predict_with_features_model

    if model == "imagenet" and not Path("imagenet").is_dir():
        results = inceptune.predict_imagenet(inputs, top=top, weights=weights, batch_size=batch_size)
    elif engine == "ray":
        from inceptune.engines.ray_engine import predict_with_ray
        from inceptune.inference.inputs import expand_inputs

        results = predict_with_ray(model, expand_inputs(inputs), top=top, batch_size=batch_size,
                                   address=ray_address, unsafe=unsafe, tta=tta)
    elif engine != "local":
        raise UserError(f"--engine must be local or ray, got {engine}.")
    elif is_features_model(model):
        results = predict_with_features_model(model, inputs, top=top, batch_size=batch_size,
                                              weights=None if weights == "imagenet" else weights)
    else:
        results = inceptune.predict(model, inputs, top=top, batch_size=batch_size, tta=tta, unsafe=unsafe,
                                    runtime=runtime)
    _print_predictions(results, as_json, as_csv)
    if all("error" in r for r in results):
        raise UserError("None of the images could be read.")


@app.command()
def evaluate(
    run: Annotated[str, typer.Argument(help="A run folder.")],
    data: Annotated[Optional[str], typer.Argument(help="Folder of the same classes (default: the run's test split).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    tta: TtaOpt = 1,
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 32,
    unsafe: UnsafeOpt = False,
) -> None:
    """Metrics, plots and report.html of a run on its held-out test split or on another labelled folder."""
    metrics = inceptune.evaluate(run, data, batch_size=batch_size, tta=tta, unsafe=unsafe)
    if as_json:
        print(json.dumps(metrics, indent=2))
        return
    from rich.table import Table

    from inceptune.evaluation.metrics import SCALARS

    table = Table(title=f"{metrics['source']}: {metrics['images']} images")
    for col in ("class", "precision", "recall", "f1", "ROC AUC", "support"):
        table.add_column(col, justify="right" if col != "class" else "left")
    for name, row in [*metrics["per_class"].items(), ("macro avg", {**metrics["macro_avg"], "roc_auc": None})]:
        table.add_row(name, *(_fmt(row[k]) for k in ("precision", "recall", "f1", "roc_auc")), str(row["support"]))
    console.console.print(table)
    print("  ".join(f"{name} {_fmt(metrics[name])}" for name in SCALARS))
    print(f"plots and report.html: {Path(metrics.get('report', run))}")


@app.command()
def explain(
    run: Annotated[str, typer.Argument(help="A run folder.")],
    inputs: Annotated[list[str], typer.Argument(help="Image files and/or folders.")],
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Folder for the overlays (default RUN/explain).")] = None,
    block: Annotated[str, typer.Option(help="Inception block whose output the heatmap shows (mixed0..mixed10).")] = "mixed10",
    class_name: Annotated[Optional[str], typer.Option("--class", help="Explain this class (default: the predicted one).")] = None,
    unsafe: UnsafeOpt = False,
) -> None:
    """Grad-CAM heatmaps: where the model looked, saved as overlays."""
    results = inceptune.explain(run, inputs, out=out, block=block, class_name=class_name, unsafe=unsafe)
    for r in results:
        print(f"{r['path']}: skipped ({r['error']})" if "error" in r else
              f"{r['path']}: {r['class']} {r['probability']:.3f} -> {r['overlay']}")
    if all("error" in r for r in results):
        raise UserError("None of the images could be read.")


@app.command()
def build(
    arch: Annotated[str, typer.Argument(help="inception-v3, googlenet, mini-inception or single-module.")],
    input_shape: Annotated[str, typer.Option(help="H,W,C, e.g. 299,299,3 or 48,48,1.")] = "299,299,3",
    classes: Annotated[int, typer.Option(help="Number of output classes.")] = 1000,
    width: Annotated[Optional[float], typer.Option(help="Filter multiplier (inception-v3, mini-inception).")] = None,
    aux: Annotated[bool, typer.Option(help="GoogLeNet: add the two auxiliary classifiers.")] = False,
    plot: Annotated[Optional[str], typer.Option(help="Draw the architecture to FILE.png or FILE.svg (needs Graphviz).")] = None,
    summary: Annotated[bool, typer.Option(help="Print the layer-by-layer summary.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Build an Inception network: parameter and multiply-accumulate counts, summary and diagram."""
    inceptune._import_tensorflow_quietly()
    from inceptune.architectures.networks import build_network
    from inceptune.architectures.profile import describe, plot as draw

    try:
        shape = tuple(int(v) for v in input_shape.split(","))
    except ValueError:
        raise UserError(f"--input-shape must be H,W,C numbers, e.g. 299,299,3; got {input_shape}.") from None
    options = {**({"width": width} if width is not None else {}), **({"aux_classifiers": True} if aux else {})}
    try:
        model = build_network(arch, shape, classes, **options)
    except TypeError:
        raise UserError(f"{arch} takes none of {', '.join('--' + k.split('_')[0] for k in options)}.") from None
    info = describe(model)
    if summary:
        model.summary(print_fn=lambda line, **_: print(line))
    if plot:
        info["plot"] = str(draw(model, plot))
    if as_json:
        print(json.dumps(info, indent=2))
        return
    print(f"{info['name']}: input {'x'.join(map(str, info['input_shape']))}, {info['layers']} layers")
    print(f"parameters: {info['parameters']:,} ({info['trainable_parameters']:,} trainable)")
    print(f"multiply-accumulates: {info['macs']:,} ({info['macs'] / 1e9:.2f} G) per image")
    if plot:
        print(f"diagram: {plot}")


@app.command()
def export(
    run: Annotated[str, typer.Argument(help="A run folder.")],
    fmt: Annotated[str, typer.Option("--format", help="saved_model, onnx, openvino or litert.")] = "onnx",
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Folder for the export (default RUN/export/FORMAT[-QUANTIZE]).")] = None,
    quantize: Annotated[Optional[str], typer.Option(help="fp16 or int8 (litert, onnx, openvino); checked against its own tolerance.")] = None,
) -> None:
    """Export a run's model for another runtime; kept only if it matches Keras on the run's images."""
    report = inceptune.export(run, fmt, out=out, quantize=quantize)
    print(f"{report['path']}: max probability difference {report['max_abs_diff']:.1e} on "
          f"{report['images_checked']} images, top-1 agreement {report['top1_agreement']:.0%}")


@app.command()
def serve(
    run: Annotated[str, typer.Argument(help="A run folder.")],
    host: Annotated[str, typer.Option(help="Address to listen on; the default only accepts this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    runtime: Annotated[str, typer.Option(help="auto, keras, onnx, openvino, or a quantized export such as onnx-int8.")] = "auto",
    top: Annotated[int, typer.Option("--top", "-k", help="Default number of classes per answer (?top_k= overrides).")] = 5,
    max_batch: Annotated[int, typer.Option(help="Largest micro-batch of concurrent requests' images.")] = 16,
    max_upload_mb: Annotated[float, typer.Option(help="Largest request body in MiB.")] = 20,
    max_pixels: Annotated[int, typer.Option(help="Largest image in pixels (checked before decoding).")] = 40_000_000,
    unsafe: UnsafeOpt = False,
) -> None:
    """Serve a run over HTTP: POST /predict, /explain, GET /health, /labels, a web page at /, docs at /docs."""
    from inceptune.deploy.server import serve as serve_run

    serve_run(run, host=host, port=port, runtime=runtime, top=top, max_batch=max_batch,
              max_upload_bytes=int(max_upload_mb * 2**20), max_pixels=max_pixels, unsafe=unsafe)


@app.command()
def features(
    data: Annotated[str, typer.Argument(help="Folder of images (class subfolders give labels), or image files.")],
    out: Annotated[str, typer.Option("--out", "-o", help="FILE.parquet (streamed) or FILE.npz.")],
    layer: Annotated[str, typer.Option(help="Inception block whose output is pooled (mixed0..mixed10).")] = "mixed10",
    pooling: Annotated[str, typer.Option(help="avg or max over space.")] = "avg",
    image_size: ImageSizeOpt = 299,
    weights: WeightsOpt = "imagenet",
    batch_size: BatchOpt = 32,
    shard: Annotated[str, typer.Option(help="i/N: only this deterministic 1/N of the files (for fan-out).")] = "0/1",
    cache_dir: CacheOpt = None,
    engine: Annotated[str, typer.Option(help="local, or ray (Ray Data with a pool of model actors).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster to join (default: $RAY_ADDRESS, else start a local one).")] = None,
) -> None:
    """Inception-v3 feature vectors, one row per image: path, label, content hash, vector."""
    inceptune.extract_features_file(data, out, layer=layer, pooling=pooling, image_size=image_size, weights=weights,
                                    batch_size=batch_size, shard=shard, cache_dir=cache_dir, engine=engine,
                                    ray_address=ray_address)


@app.command("fit-features")
def fit_features(
    features_file: Annotated[str, typer.Argument(metavar="FEATURES", help="A features file from `inceptune features`.")],
    classifier: Annotated[str, typer.Option(help="logreg, svm, knn or mlp.")] = "logreg",
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Folder for the fitted model (usable by predict).")] = None,
    folds: Annotated[int, typer.Option(help="Stratified cross-validation folds.")] = 5,
    seed: SeedOpt = 1337,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Fit a scikit-learn classifier on a features file (small grid, stratified k-fold CV)."""
    result = inceptune.fit_features(features_file, classifier, out=out, folds=folds, seed=seed)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{classifier}: {folds}-fold accuracy {result['cv_accuracy_mean']:.4f} ± {result['cv_accuracy_std']:.4f} "
              f"({result['best_params']})")


@app.command()
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


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


@app.command()
def demo(
    out: Annotated[str, typer.Option("--out", "-o", help="Where the demo writes its data and run.")] = "runs/demo",
    weights: WeightsOpt = "imagenet",
) -> None:
    """Generate a small dataset, train on it, evaluate and predict: the whole workflow in a minute or two."""
    inceptune.demo(out=out, weights=weights)


def _print_predictions(results: list[dict], as_json: bool, as_csv: bool) -> None:
    if as_json:
        print(json.dumps(results, indent=2))
    elif as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["path", "rank", "label", "probability", "error"])
        for r in results:
            if "error" in r:
                writer.writerow([r["path"], "", "", "", r["error"]])
            for rank, t in enumerate(r.get("top", []), 1):
                writer.writerow([r["path"], rank, t["label"], f"{t['probability']:.6f}", ""])
    else:
        for r in results:
            if "error" in r:
                print(f"{r['path']}: skipped ({r['error']})")
                continue
            ranked = ", ".join(f"{t['label']} {t['probability']:.3f}" for t in r["top"])
            print(f"{r['path']}: {ranked}")


_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM ends a run the way Ctrl-C does


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        app()
    except UserError as exc:
        console.console.print(f"error: {exc}", style="bold red", markup=False, highlight=False)
        sys.exit(exc.exit_code)
    except OSError as exc:
        if exc.errno not in _DISK_ERRORS:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        console.console.print(f"error: cannot write{where}: {exc.strerror}; finished work is kept, free space "
                              "or choose another folder and rerun.", style="bold red", markup=False, highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        console.console.print("interrupted: finished work is kept (features in the cache, finished epochs in "
                              "RUN/checkpoint); rerun train with --resume to continue.", style="yellow", markup=False)
        sys.exit(130)
