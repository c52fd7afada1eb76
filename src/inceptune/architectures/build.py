"""`build`: a named Inception network, what it costs, and on request its summary and diagram."""

from __future__ import annotations

import os

from inceptune.architectures.networks import build_network
from inceptune.architectures.profile import describe, plot as draw
from inceptune.errors import UserError


def build(arch: str, input_shape: str | tuple[int, int, int] = (299, 299, 3), classes: int = 1000,
          width: float | None = None, aux: bool = False, plot: str | os.PathLike | None = None,
          summary: bool = False) -> dict:
    """Build a named Inception network and describe it: parameter and multiply-accumulate counts, and on request
    Keras' layer-by-layer summary and a diagram.

    Args:
        arch: inception-v3, googlenet, mini-inception or single-module.
        input_shape: (H, W, C), or the command line's "H,W,C" (e.g. "48,48,1").
        classes: the number of output classes.
        width: filter multiplier (inception-v3, mini-inception).
        aux: GoogLeNet's two auxiliary classifiers.
        plot: draw the architecture to this .png or .svg file (needs Graphviz); its path comes back as "plot".
        summary: the layer-by-layer summary comes back as "summary" (text).

    Examples:
        >>> info = inceptune.build("mini-inception", input_shape="48,48,1", classes=7)
        >>> info["parameters"], info["macs"]
    """
    if isinstance(input_shape, str):
        try:
            input_shape = tuple(int(v) for v in input_shape.split(","))
        except ValueError:
            raise UserError(f"--input-shape must be H,W,C numbers, e.g. 299,299,3; got {input_shape}.") from None
    options = {**({"width": width} if width is not None else {}), **({"aux_classifiers": True} if aux else {})}
    try:
        model = build_network(arch, input_shape, classes, **options)
    except TypeError:
        raise UserError(f"{arch} takes none of {', '.join('--' + k.split('_')[0] for k in options)}.") from None
    info = describe(model)
    if summary:
        lines: list[str] = []
        model.summary(print_fn=lambda line, **_: lines.append(line))
        info["summary"] = "\n".join(lines)
    if plot:
        info["plot"] = str(draw(model, plot))
    return info
