"""`report.html`: one self-contained page (pictures embedded) with a run's settings,
dataset, metrics and plots, rendered from the Jinja template in `resources/`."""

from __future__ import annotations

import base64
import os
from datetime import datetime
from importlib import resources
from pathlib import Path

import jinja2

from inceptune.atomic import atomic_write_text
from inceptune.evaluation.metrics import SCALARS, top_k_name
from inceptune.vocabulary.version import __version__


def write_report(path: str | os.PathLike, title: str, *, figures: list[tuple[Path, str]] = (),
                 metrics: dict | None = None, dataset: dict | None = None, settings: dict | None = None,
                 cv: dict | None = None, source: str | None = None,
                 recipe: list[tuple[str, str]] = ()) -> Path:
    """Render the report; `figures` are (PNG path, caption) pairs, embedded as data URIs; `recipe` rows say
    how the recipe was chosen and on which split."""
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(resources.files("inceptune.resources").joinpath("report.html.j2").read_text("utf-8"))
    scalars = []  # (name, value, 95% interval)
    if metrics:
        ci = metrics.get("ci95") or {}
        scalars = [(name, _fmt(metrics.get(name)), _interval(ci.get(name))) for name in SCALARS]
        scalars += [(f"top-{k} accuracy", _fmt(v), _interval(ci.get(top_k_name(k))))
                    for k, v in metrics.get("top_k_accuracy", {}).items() if k != "1"]
        scalars.append(("images", metrics["images"], ""))
        if metrics.get("calibration"):  # the temperature folded into the model, and what it changed
            c = metrics["calibration"]
            scalars += [("temperature (calibration)", _fmt(c["temperature"]), ""),
                        ("ece before calibration", _fmt(c["ece_before"]), "")]
        if metrics.get("ood"):
            o = metrics["ood"]
            scalars.append(("answered 'none of these'", f"{o['unknown']} of {metrics['images']} (OOD score above "
                                                        f"{o['threshold']:.4f})", ""))
    html = template.render(
        title=title, version=__version__, written=f"{datetime.now():%Y-%m-%d %H:%M}", source=source,
        metrics=metrics, scalars=scalars, cv=cv, dataset=dataset, recipe=list(recipe),
        settings=_setting_rows(settings or {}),
        figures=[{"data": base64.b64encode(Path(p).read_bytes()).decode("ascii"), "caption": caption}
                 for p, caption in figures if Path(p).is_file()],
        fmt=_fmt, interval=_interval,
    )
    atomic_write_text(path, html)
    return Path(path)


def _setting_rows(settings: dict) -> dict:
    """config.json's groups as one table: each setting by its name, the run's facts as resolved.NAME."""
    rows = {}
    for key, value in settings.items():
        if key == "versions":
            continue
        if isinstance(value, dict):
            rows.update({(f"{key}.{k}" if key == "resolved" else k): v for k, v in value.items()})
        else:
            rows[key] = value
    return rows


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _interval(interval: list[float] | None) -> str:
    """A 95% interval as the CLI prints it; empty where the metric has none."""
    return "" if interval is None else f"[{interval[0]:.4f}, {interval[1]:.4f}]"
