"""The `inceptune` command: parses arguments and delegates to the Python API.

User errors print one sentence and exit 2; an interrupted run exits 130
and keeps what is done (the feature cache). Bugs raise with a traceback.
"""

from __future__ import annotations

import csv
import errno
import inspect
import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

import inceptune  # sets TensorFlow's logging defaults before anything imports it
from inceptune import console, hooks
from inceptune.errors import UserError, WorkerLost
from inceptune.inference.runtimes import DEFAULT_RUNTIME
from inceptune.settings import DEFAULTS, TABLE, command_settings
from inceptune.vocabulary.limits import DEFAULT_MAX_PIXELS, MAX_ACCURACY_DROP

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Transfer learning with Inception-v3 (train, predict, evaluate, cv, explain), and Inception networks from scratch (build, train --arch).")

WeightsOpt = Annotated[str, typer.Option("--weights", help=TABLE["weights"][1].help)]


@app.callback()
def _global(quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only results and errors.")] = False) -> None:
    console.set_quiet(quiet)


TtaOpt = Annotated[int, typer.Option("--tta", help="Average over N deterministic views (flips, crops); 1 = none, up to 12.")]
UnsafeOpt = Annotated[bool, typer.Option("--unsafe", help="Load a model that carries Python code (Lambda layers): only for files you trust.")]
RuntimeOpt = Annotated[str, typer.Option(help="auto (the fastest checked export on this machine, timed once; int8 only when its accuracy check passed; else keras), keras, onnx, openvino, or a quantized export such as onnx-int8.")]
ImageSizeOpt = Annotated[int, typer.Option(help="Images are resized to this square (75 or more).")]
BatchOpt = Annotated[int, typer.Option(help="Images per batch.")]
CacheOpt = Annotated[Optional[str], typer.Option(help="Feature cache folder (default $INCEPTUNE_CACHE or ~/.cache/inceptune/features).")]
_METAVARS = {"int": "INT", "float": "FLOAT", "path": "PATH", "str": "TEXT", "ints": "INT", "strs": "TEXT"}


def _setting_option(name: str, help: str | None = None) -> inspect.Parameter:
    """A command-line option for setting `name`, made from its Spec: given, it is parsed and checked like
    a Python value; not given (None), it leaves the default or the config file's value alone."""
    spec = TABLE[name][1]
    flag, default = spec.cli_flag(name), DEFAULTS.get(name)
    names = [flag, *([spec.short] if spec.short else [])]
    if spec.kind == "bool":
        names = [f"{flag}/--no-{flag[2:]}"]
        shown = flag[2:] if default else f"no-{flag[2:]}"
        annotation = Optional[bool]
    else:
        shown = "none" if default in (None, ()) else f"{default:g}" if isinstance(default, float) else str(default)
        annotation = Optional[list[str]] if spec.kind in ("ints", "strs") else Optional[str]
    metavar = None if spec.kind == "bool" else "CHOICE" if spec.choices else _METAVARS[spec.kind]
    option = typer.Option(*names, help=help or spec.help, show_default=shown, metavar=metavar)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[annotation, option])


def _settings_command(name: str, command: str, api, summary: str, helps: dict | None = None,
                      extra: list[inspect.Parameter] = (), show=None) -> None:
    """Register `name`: DATA, --config FILE, every setting of `command` as an option, and `extra` options
    for `show(result, **extra)`; it calls `api(data, config=..., **the settings given)`."""
    data = inspect.Parameter("data", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=Annotated[
        Optional[str], typer.Argument(help=TABLE["data"][1].help + " Optional with --config.", show_default=False)])
    config = inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        Optional[str], typer.Option(help="Settings from a JSON, YAML or TOML file (a run's config.json replays the "
                                         "run); options given here override it.", metavar="FILE")])
    options = [_setting_option(n, (helps or {}).get(n)) for n in command_settings(command) if n != "data"]

    def run(**given):
        data_value, config_value = given.pop("data"), given.pop("config")
        shown = {p.name: given.pop(p.name) for p in extra}
        settings = {n: TABLE[n][1].parse(n, v) for n, v in given.items() if v is not None and v != []}
        result = api(data_value, config=config_value, **settings)
        if show is not None:
            show(result, **shown)

    run.__signature__ = inspect.Signature([data, config, *options, *extra])
    run.__doc__ = summary
    app.command(name)(run)


_settings_command("train", "train", lambda data, **kw: inceptune.train(data, **kw),
                  "Train a classifier: cached features, the head, then fine-tuning of the top blocks; writes "
                  "report.html. With --arch, a network from scratch instead.")


def _show_cv(result, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.record, indent=2))
        return
    print(f"{'metric':<18} mean ± std       [95% interval of the mean]")
    for name, s in result.summary.items():
        ci = s.get("ci95")
        print(f"{name:<18} {s['mean']:.4f} ± {s['std']:.4f}" + (f"  [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""))
    print(f"out-of-fold predictions: {result.path / 'predictions.csv'}")


_JSON = inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
    bool, typer.Option("--json", help="Print cv.json.")])
_JSON_AUDIT = inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
    bool, typer.Option("--json", help="Print audit.json.")])
_settings_command("cv", "cv", lambda data, **kw: inceptune.cross_validate(data, **kw),
                  "Stratified k-fold cross-validation of the whole train recipe, reusing cached features across "
                  "folds; keeps every image's out-of-fold probabilities.",
                  helps={"out": "Folder for cv.json, predictions.csv and report.html (default runs/cv-DATA-TIME)."},
                  extra=[_JSON], show=_show_cv)


_settings_command("tune", "tune", lambda data, **kw: inceptune.tune(data, **kw),
                  "Search the recipe (feature block, pooling, head and its settings) with Optuna on cached "
                  "features, by k-fold CV on train + val; writes tune.json, best.json (train --config best.json "
                  "fits it) and plots. Run it again with the same --out to continue a study.",
                  helps={"out": "Study folder: study.db, tune.json, best.json, plots (default runs/tune-DATA-TIME)."})


def _show_audit(result, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.record, indent=2))
        return
    counts = result.record["counts"]
    print(", ".join(f"{name} {n}" for name, n in counts.items() if n) or "no issues found")
    print(f"issues: {result.path / 'issues.csv'}; review and pick fixes: {result.path / 'audit.html'}")


_settings_command("audit", "audit", lambda data, **kw: inceptune.audit(data, **kw),
                  "Audit a dataset on its cached features: label errors (cleanlab), near-duplicates and the "
                  "splits they leak across, outliers, bad photos (CleanVision); writes issues.csv, audit.json "
                  "and audit.html, whose accepted fixes train --exclude/--relabel apply.",
                  helps={"out": "Folder for issues.csv, audit.json and audit.html (default runs/audit-DATA-TIME).",
                         "overwrite": "Replace an audit in --out."},
                  extra=[_JSON_AUDIT], show=_show_audit)


def _show_lr(finding) -> None:
    low, high = finding.fastest_range
    print(f"suggested learning rate {finding.suggestion:.3g} (fastest fall between {low:.3g} and {high:.3g}); "
          f"plot {finding.plot}")


_settings_command("lr-find", "lr_find", lambda data, **kw: inceptune.lr_find(data, **kw),
                  "Learning-rate range test: loss against a growing learning rate, a plot, and a suggested value.",
                  show=_show_lr)


@app.command()
def predict(
    model: Annotated[str, typer.Argument(help="A run folder, a fit-features model folder, or 'imagenet' for ImageNet's 1000 classes.")],
    inputs: Annotated[list[str], typer.Argument(help="Image files and/or folders.")],
    top: Annotated[int, typer.Option("--top", "-k", help="Classes to show per image.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
    weights: WeightsOpt = DEFAULTS["weights"],
    batch_size: BatchOpt = DEFAULTS["batch_size"],
    tta: TtaOpt = 1,
    unsafe: UnsafeOpt = False,
    runtime: RuntimeOpt = DEFAULT_RUNTIME,
    engine: Annotated[str, typer.Option(help="local, or ray (Ray Data with a pool of model actors) for a run folder.")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster to join (default: $RAY_ADDRESS, else start a local one).")] = None,
) -> None:
    """Rank classes for images with a trained run, or with ImageNet's classifier."""
    from inceptune.workflows.fit_features import is_features_model, predict_with_features_model

    if model == "imagenet" and not Path("imagenet").is_dir():
        results = inceptune.predict_imagenet(inputs, top=top, weights=weights, batch_size=batch_size)
    elif engine == "ray":
        from inceptune.engines.ray_engine import predict_with_ray
        from inceptune.inference.inputs import expand_inputs

        results = predict_with_ray(model, expand_inputs(inputs), top=top, batch_size=batch_size,
                                   address=ray_address, unsafe=unsafe, tta=tta, runtime=runtime)
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
    batch_size: BatchOpt = DEFAULTS["batch_size"],
    unsafe: UnsafeOpt = False,
    runtime: RuntimeOpt = DEFAULT_RUNTIME,
) -> None:
    """Metrics, plots and report.html of a run on its held-out test split or on another labelled folder."""
    metrics = inceptune.evaluate(run, data, batch_size=batch_size, tta=tta, unsafe=unsafe, runtime=runtime)
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
    intervals = metrics.get("ci95") or {}
    print(f"{'metric':<18} value   [95% interval]")
    for name in SCALARS:
        ci = intervals.get(name)
        print(f"{name:<18} {_fmt(metrics[name])}" + (f"  [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""))
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
    console.import_tensorflow_quietly()
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
    fmt: Annotated[str, typer.Option("--format", help="saved_model (with a signature for encoded images, in a TF Serving "
                                                        "version folder), onnx, openvino, litert, or triton (a Triton "
                                                        "model repository).")] = "onnx",
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Folder for the export (default RUN/export/FORMAT[-QUANTIZE]).")] = None,
    quantize: Annotated[Optional[str], typer.Option(help="fp16 or int8 (litert, onnx, openvino). fp16 is checked against its own tolerance; int8 ONNX and OpenVINO on accuracy.")] = None,
    max_accuracy_drop: Annotated[float, typer.Option(help="int8 (ONNX, OpenVINO): the most accuracy (macro F1 for multi-label) it may lose against FP32 on the run's held-out photos, as a fraction (0.005 = half a point).")] = MAX_ACCURACY_DROP,
) -> None:
    """Export a run's model for another runtime; kept only if it matches Keras on the run's images (int8: only if
    it keeps its accuracy on the held-out photos)."""
    report = inceptune.export(run, fmt, out=out, quantize=quantize, max_accuracy_drop=max_accuracy_drop)
    accuracy = report.get("accuracy")
    if accuracy:
        print(f"{report['path']}: {accuracy['metric']} on {accuracy['images']} held-out photos {accuracy['fp32']:.4f} "
              f"(FP32) -> {accuracy['quantized']:.4f}, drop {accuracy['drop']:.4f} (at most {accuracy['max_drop']:g})")
    elif report["format"] == "triton":
        print(f"{report['path']}: model '{report['model_name']}' from {report['from']}")
    else:
        print(f"{report['path']}: max probability difference {report['max_abs_diff']:.1e} on "
              f"{report['images_checked']} images, top-1 agreement {report['top1_agreement']:.0%}")


@app.command()
def serve(
    run: Annotated[str, typer.Argument(help="A run folder.")],
    host: Annotated[str, typer.Option(help="Address to listen on; the default only accepts this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    runtime: RuntimeOpt = DEFAULT_RUNTIME,
    top: Annotated[int, typer.Option("--top", "-k", help="Default number of classes per answer (?top_k= overrides).")] = 5,
    max_batch: Annotated[int, typer.Option(help="Largest micro-batch of concurrent requests' images.")] = 16,
    max_upload_mb: Annotated[float, typer.Option(help="Largest request body in MiB.")] = 20,
    max_pixels: Annotated[int, typer.Option(help="Largest image in pixels (checked before decoding).")] = DEFAULT_MAX_PIXELS,
    unsafe: UnsafeOpt = False,
    api_key: Annotated[Optional[str], typer.Option(help="Require this key on every route but health "
                                                        "(Authorization: Bearer KEY, or X-API-Key); default "
                                                        "$INCEPTUNE_API_KEY.")] = None,
    api_key_file: Annotated[Optional[str], typer.Option(help="A file of accepted keys, one per line.")] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Allow serving beyond this machine without a key.")] = False,
    cors: Annotated[Optional[list[str]], typer.Option(help="An origin browsers may call the API from "
                                                           "(repeatable); CORS is off without it.")] = None,
    model_name: Annotated[Optional[str], typer.Option(help="The model's name in the KServe v2 and TF Serving "
                                                           "routes (default: the run folder's name).")] = None,
) -> None:
    """Serve a run over HTTP: POST /predict, /explain, GET /health, /labels, /metrics, a web page at /, docs at
    /docs; the Open Inference Protocol (KServe v2, Triton clients) under /v2 and TF Serving REST under /v1."""
    from inceptune.serving.app import serve as serve_run

    serve_run(run, host=host, port=port, runtime=runtime, top=top, max_batch=max_batch,
              max_upload_bytes=int(max_upload_mb * 2**20), max_pixels=max_pixels, unsafe=unsafe, api_key=api_key,
              api_key_file=api_key_file, no_auth=no_auth, cors=cors, model_name=model_name)


@app.command()
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
    weights: WeightsOpt = DEFAULTS["weights"],
) -> None:
    """Generate a small dataset, train on it, evaluate and predict: the whole workflow in a minute or two."""
    inceptune.demo(out=out, weights=weights)


cache_app = typer.Typer(no_args_is_help=True, help="The feature cache: what it holds, and reclaiming its space.")
app.add_typer(cache_app, name="cache")
CacheRootOpt = Annotated[Optional[str], typer.Option("--cache-dir", help="Feature cache folder (default $INCEPTUNE_CACHE or ~/.cache/inceptune/features).")]


@cache_app.command("info")
def cache_info(cache_dir: CacheRootOpt = None,
               as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Each feature space in the cache: entries per kind, images, files and bytes."""
    spaces = inceptune.cache_info(cache_dir)
    if as_json:
        print(json.dumps(spaces, indent=2))
        return
    if not spaces:
        print("The feature cache is empty.")
    for s in spaces:
        what = s["space"]
        print(f"{s['key']}: {what.get('backbone', '?')} at {what.get('image_size', '?')} px, weights "
              f"{str(what.get('weights', '?'))[:19]}; last used {s['last_used']}")
        print(f"  {s['images']} images, {sum(s['entries'].values())} entries in {s['files']} files, "
              f"{s['disk_bytes'] / 2**20:.1f} MiB on disk ({s['unreferenced_bytes'] / 2**20:.1f} MiB unreferenced"
              + (f", {s['legacy_files']} pre-0.6 files" if s["legacy_files"] else "") + ")")
        for kind, count in s["entries"].items():
            print(f"    {kind}: {count}")


@cache_app.command("prune")
def cache_prune(cache_dir: CacheRootOpt = None,
                older_than: Annotated[Optional[float], typer.Option(help="Also remove spaces not used for this many days.")] = None) -> None:
    """Reclaim space: shard files no entry points to, pre-0.6 entries, and (--older-than) unused spaces."""
    removed = inceptune.prune_cache(cache_dir, older_than)
    print(f"Removed {len(removed['spaces'])} space(s) and {removed['files']} file(s): "
          f"{removed['bytes'] / 2**20:.1f} MiB.")


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


class _Interrupted(BaseException):
    """Ctrl-C or SIGTERM. Not a KeyboardInterrupt: Typer turns those into a silent exit 130, and the user
    should hear that finished work is kept."""


def _interrupt(signum, frame):
    raise _Interrupted


def main() -> None:
    # Ctrl-C and SIGTERM always interrupt, even when the parent started us with SIGINT ignored (a shell's
    # background job, some test runners and process managers): Python then installs no handler of its own.
    saved = signal.signal(signal.SIGINT, _interrupt), signal.signal(signal.SIGTERM, _interrupt)
    try:
        _run()
    finally:  # when called in-process (tests, notebooks), the host's handlers come back
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])


def _run() -> None:
    try:
        hooks.reset()
        app()
    except UserError as exc:
        console.stop_progress()  # a bar left on screen would be drawn again after the message
        console.console.print(f"error: {exc}", style="bold red", markup=False, highlight=False)
        if isinstance(exc, WorkerLost):  # see WorkerLost: nothing is left to close cleanly
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exc.exit_code)
        sys.exit(exc.exit_code)
    except OSError as exc:
        if exc.errno not in _DISK_ERRORS:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        console.stop_progress()
        console.console.print(f"error: cannot write{where}: {exc.strerror}; finished work is kept, free space "
                              "or choose another folder and rerun.", style="bold red", markup=False, highlight=False)
        sys.exit(2)
    except (_Interrupted, KeyboardInterrupt):
        console.stop_progress()
        console.console.print("interrupted: finished work is kept (computed features stay in the cache; train keeps "
                              "its finished epochs in RUN/checkpoint, and `--resume` continues from them).",
                              style="yellow", markup=False)
        sys.exit(130)
