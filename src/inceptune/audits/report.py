"""What an audit writes: issues.csv (one row per image and issue, worst first within each issue), audit.json,
and audit.html (thumbnails grouped by issue, each with its reason and a checkbox; a button downloads the
accepted fixes as a CSV that `train --exclude` and `train --relabel` read)."""

from __future__ import annotations

import base64
import csv
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from inceptune.atomic import atomic_path, atomic_write_json, atomic_write_text
from inceptune.data.fixes import FIX_COLUMNS

# Every issue an audit reports, in the order the page shows them, with what accepting its fix means.
ISSUES = {
    "label": "probably mislabelled: relabel as suggested, or exclude",
    "near_duplicate": "a near-duplicate of another photo: exclude the copy",
    "outlier": "unlike the rest of its class and of every class: exclude",
    "blurry": "blurred", "dark": "too dark", "bright": "too bright", "small": "unusually small",
    "odd_aspect": "extreme aspect ratio", "low_information": "nearly constant (little information)",
}
THUMBNAIL = 160


@dataclass
class Issue:
    path: str
    issue: str  # one of ISSUES
    score: float  # 0..1, higher is worse
    reason: str
    label: str = ""
    suggested_label: str = ""
    duplicate_of: str = ""

    def row(self) -> dict:
        return {"path": self.path, "issue": self.issue, "score": f"{self.score:.4f}",
                "suggested_label": self.suggested_label, "duplicate_of": self.duplicate_of}


def ordered(issues: list[Issue]) -> list[Issue]:
    order = list(ISSUES)
    return sorted(issues, key=lambda i: (order.index(i.issue), -i.score, i.path))


def write_issues_csv(path: Path, issues: list[Issue]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIX_COLUMNS)
        writer.writeheader()
        writer.writerows(i.row() for i in ordered(issues))


def thumbnail(path: str) -> str:
    """A small JPEG of the photo as a data: URI ('' when it cannot be read)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img).convert("RGB")
            img.thumbnail((THUMBNAIL, THUMBNAIL))
            buffer = io.BytesIO()
            img.save(buffer, format="JPEG", quality=80)
    except OSError:
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def write_html(path: Path, title: str, issues: list[Issue], record: dict) -> None:
    import jinja2

    wanted = {i.path for i in issues} | {i.duplicate_of for i in issues if i.duplicate_of}
    thumbs = {p: thumbnail(p) for p in sorted(wanted)}
    groups = [(name, ISSUES[name], [i for i in ordered(issues) if i.issue == name]) for name in ISSUES]
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(resources.files("inceptune.resources").joinpath("audit.html.j2").read_text("utf-8"))
    atomic_write_text(path, template.render(title=title, groups=[g for g in groups if g[2]], thumbs=thumbs,
                                            record=record, columns=list(FIX_COLUMNS)))


def write_json(path: Path, record: dict) -> None:
    atomic_write_json(path, record)
