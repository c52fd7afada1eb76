"""export and serve: a run's model for other runtimes, and over HTTP."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

import inceptune
from inceptune.cli.options import RuntimeOpt, UnsafeOpt
from inceptune.inference.runtimes import DEFAULT_RUNTIME
from inceptune.vocabulary.limits import DEFAULT_MAX_PIXELS, MAX_ACCURACY_DROP


def export(
    run: Annotated[str, typer.Argument(help="A run folder.")],
    fmt: Annotated[str, typer.Option("--format", help="saved_model (with a signature for encoded images, in a TF Serving "
                                                        "version folder), onnx, openvino, litert, or triton (a Triton "
                                                        "model repository).")] = "onnx",
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Folder for the export (default RUN/export/FORMAT[-QUANTIZE]).")] = None,
    quantize: Annotated[Optional[str], typer.Option(help="fp16 or int8 (litert, onnx, openvino), or bf16 (openvino, where the CPU computes it). fp16 is checked against its own tolerance; bf16, and int8 ONNX and OpenVINO, on the val photos' accuracy and every output.")] = None,
    max_accuracy_drop: Annotated[float, typer.Option(help="int8 (ONNX, OpenVINO): the most accuracy (macro F1 for multi-label) it may lose against FP32 on the run's held-out photos, as a fraction (0.005 = half a point).")] = MAX_ACCURACY_DROP,
) -> None:
    """Export a run's model for another runtime; kept only if it matches Keras on the run's images (int8: only if
    it keeps its accuracy on the held-out photos)."""
    report = inceptune.export(run, fmt, out=out, quantize=quantize, max_accuracy_drop=max_accuracy_drop)
    accuracy = report.get("accuracy")
    if accuracy:
        print(f"{report['path']}: {accuracy['metric']} on {accuracy['images']} held-out photos {accuracy['fp32']:.4f} "
              f"(FP32) -> {accuracy['quantized']:.4f}, drop {accuracy['drop']:.4f} (at most {accuracy['max_drop']:g}); "
              f"top-1 agreement with Keras {report['outputs']['top1_agreement']:.4f}")
    elif report["format"] == "triton":
        print(f"{report['path']}: model '{report['model_name']}' from {report['from']}")
    else:
        print(f"{report['path']}: max probability difference {report['max_abs_diff']:.1e} on "
              f"{report['images_checked']} images, top-1 agreement {report['top1_agreement']:.0%}")


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
    inceptune.serve(run, host=host, port=port, runtime=runtime, top=top, max_batch=max_batch,
                    max_upload_bytes=int(max_upload_mb * 2**20), max_pixels=max_pixels, unsafe=unsafe, api_key=api_key,
                    api_key_file=api_key_file, no_auth=no_auth, cors=cors, model_name=model_name)
