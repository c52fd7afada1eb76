"""Options several commands share, with one help text each."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from inceptune.settings import TABLE

WeightsOpt = Annotated[str, typer.Option("--weights", help=TABLE["weights"][1].help)]
TtaOpt = Annotated[int, typer.Option("--tta", help="Average over N deterministic views (flips, crops); 1 = none, up to 12.")]
UnsafeOpt = Annotated[bool, typer.Option("--unsafe", help="Load a model that carries Python code (Lambda layers): only for files you trust.")]
CoverageOpt = Annotated[Optional[float], typer.Option(help="Prediction sets that hold the true class for this share of photos like the run's (default: the coverage the run was trained for).")]
RuntimeOpt = Annotated[str, typer.Option(help="auto (the fastest checked export on this machine, timed once; int8 only when its accuracy check passed; else keras), keras, onnx, openvino, or a quantized export such as onnx-int8.")]
ImageSizeOpt = Annotated[int, typer.Option(help="Images are resized to this square (75 or more).")]
BatchOpt = Annotated[int, typer.Option(help="Images per batch.")]
CacheOpt = Annotated[Optional[str], typer.Option(help="Feature cache folder (default $INCEPTUNE_CACHE or ~/.cache/inceptune/features).")]
RayAddressOpt = Annotated[Optional[str], typer.Option(help="Ray cluster to join (default: $RAY_ADDRESS, else start a local one).")]
