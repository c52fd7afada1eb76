"""build: an Inception network from scratch, its counts, summary and diagram."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

import inceptune


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
    info = inceptune.build(arch, input_shape=input_shape, classes=classes, width=width, aux=aux, plot=plot,
                           summary=summary)
    if summary:
        print(info.pop("summary"))
    if as_json:
        print(json.dumps(info, indent=2))
        return
    print(f"{info['name']}: input {'x'.join(map(str, info['input_shape']))}, {info['layers']} layers")
    print(f"parameters: {info['parameters']:,} ({info['trainable_parameters']:,} trainable)")
    print(f"multiply-accumulates: {info['macs']:,} ({info['macs'] / 1e9:.2f} G) per image")
    if plot:
        print(f"diagram: {plot}")
