"""demo: the whole workflow on generated shapes."""

from __future__ import annotations

from typing import Annotated

import typer

import inceptune
from inceptune.cli.options import WeightsOpt
from inceptune.settings import DEFAULTS


def demo(
    out: Annotated[str, typer.Option("--out", "-o", help="Where the demo writes its data and run.")] = "runs/demo",
    weights: WeightsOpt = DEFAULTS["weights"],
) -> None:
    """Generate a small dataset, train on it, evaluate and predict: the whole workflow in a minute or two."""
    inceptune.demo(out=out, weights=weights)
