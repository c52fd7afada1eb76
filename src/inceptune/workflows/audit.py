"""`audit`: a dataset's label errors, near-duplicates across splits, outliers and bad photos.

    settings (checked) -> prepare: load_training_data (fixes and name groups applied, as train does)
        -> extract_and_group: the one backbone pass train makes (cached, shared), near-duplicate clusters
        -> label issues (cleanlab, out-of-fold heads), outliers (cleanlab), photo quality (CleanVision)
        -> issues.csv, audit.json, audit.html in --out
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inceptune import console
from inceptune.audits.labels import NEIGHBOUR_SOURCE, SOURCES, find_label_issues
from inceptune.audits.outliers import find_outliers
from inceptune.audits.quality import find_quality_issues
from inceptune.audits.report import ISSUES, Issue, ordered, write_html, write_issues_csv, write_json
from inceptune.data.scan import ImageRecord
from inceptune.errors import UserError
from inceptune.features.cache import FeatureCache
from inceptune.features.duplicates import NearDuplicates, find_near_duplicates
from inceptune.settings import Settings, documented, resolve
from inceptune.workflows.result import default_out

_DATA = inspect.Parameter("data", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
_CONFIG = inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None)


@dataclass
class AuditResult:
    path: Path  # the folder with issues.csv, audit.json and audit.html
    issues: list[Issue]
    record: dict  # audit.json's content


@documented("audit", [_DATA, _CONFIG])
def audit(data=None, *, config=None, **settings) -> AuditResult:
    """Audit a folder of class subfolders: label errors, near-duplicates (and the splits they leak across),
    outliers, and blurred, dark, bright, small, oddly shaped or near-constant photos.

    Runs the backbone once per image into the feature cache that `train` reads (a following train extracts
    nothing), and writes issues.csv, audit.json and audit.html to `out` (default runs/audit-DATA-TIME).

    Examples:
        >>> result = inceptune.audit("photos/", out="audits/photos")
        >>> result.record["counts"]
        {'label': 12, 'near_duplicate': 4, ...}
        >>> inceptune.train("photos/", exclude="audits/photos/issues.csv")  # or the fixes audit.html downloads
    """
    from inceptune.storage import local_path
    from inceptune.workflows.prepare import prepare

    s = resolve("audit", {**settings, **({"data": data} if data is not None else {})}, config)
    local_path(s.data.data, "audit (CleanVision opens each photo as a file)")  # an object store: one sentence
    start = time.perf_counter()
    prepared = prepare(s, on_data=lambda dataset: _open(s, start))
    (out, scanned), dataset, cache, extraction = prepared.out, prepared.dataset, prepared.cache, prepared.extraction
    timings = {"scan": scanned, "features": prepared.seconds}
    records = dataset.records

    features = _features(records, cache)
    single = not dataset.multilabel
    y = np.array([dataset.label_index(r) for r in records]) if single else np.zeros(len(records), int)
    labels = None
    with console.progress("Auditing", total=4) as advance:
        mark = time.perf_counter()
        duplicates = find_near_duplicates(records, cache, s.data.duplicate_similarity)
        issues = _duplicate_issues(duplicates)
        timings["near_duplicates"] = time.perf_counter() - mark
        advance(note="near-duplicates")

        mark = time.perf_counter()
        skipped = "a multi-label dataset" if not single else None
        if single:
            try:
                labels = find_label_issues(features, y, len(dataset.classes), [r.group_key for r in records],
                                           s.data.seed)
                issues += _label_issues(records, dataset.classes, labels)
            except ValueError as exc:
                skipped = str(exc)
                console.warn(f"no label issues looked for: {skipped}")
        timings["labels"] = time.perf_counter() - mark
        advance(note="label issues")

        mark = time.perf_counter()
        outliers = find_outliers(features[NEIGHBOUR_SOURCE], y)
        issues += [Issue(r.path, "outlier", float(outliers.score[k]),
                         f"far from every class (kNN distance {outliers.score[k]:.3f}) and from its own "
                         f"({outliers.own_class[k]:.3f})", r.label)
                   for k, r in enumerate(records) if outliers.flagged[k]]
        timings["outliers"] = time.perf_counter() - mark
        advance(note="outliers")

        mark = time.perf_counter()
        quality = find_quality_issues([r.path for r in records])
        for name, (flagged, score) in quality.items():
            issues += [Issue(r.path, name, float(score[k]), f"{ISSUES[name]} (score {score[k]:.2f})", r.label)
                       for k, r in enumerate(records) if flagged[k]]
        timings["quality"] = time.perf_counter() - mark
        advance(note="photo quality (CleanVision)")
    if labels is not None:
        console.info(f"Label issues: {int(labels.flagged.sum())} (cleanlab on out-of-fold probabilities of "
                     f"{labels.folds}-fold heads, whose accuracy against the given labels is "
                     f"{labels.summary()['ensemble_accuracy']:.3f}; a logistic regression on mixed10 features "
                     f"alone: {labels.head_accuracy[NEIGHBOUR_SOURCE]:.3f}).")

    counts = {name: sum(1 for i in issues if i.issue == name) for name in ISSUES}
    record = {
        "data": dataset.root, "images": len(records), "classes": dataset.classes, "issues": len(issues),
        "counts": counts, "images_with_issues": len({i.path for i in issues}),
        "near_duplicates": duplicates.summary(), "leakage": dataset.leakage,
        "label_issues": labels.summary() if labels else {"skipped": skipped},
        "outliers": outliers.summary(),
        "quality": {"method": "cleanlab CleanVision Imagelab.find_issues", "flagged": {n: int(f.sum()) for n, (f, _) in
                                                                                       quality.items()}},
        "dataset": dataset.summary(), "features": extraction.as_dict(),
        "settings": s.as_dict(("data", "recipe", "run")),
    }
    mark = time.perf_counter()
    write_issues_csv(out / "issues.csv", issues)
    write_html(out / "audit.html", f"inceptune audit of {Path(dataset.root).name}", issues, record)
    timings["report"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - start
    record["seconds"] = {k: round(v, 3) for k, v in timings.items()}
    write_json(out / "audit.json", record)
    found = ", ".join(f"{n} {c}" for n, c in counts.items() if c) or "none"
    console.info(f"Audit of {len(records)} images in {timings['total']:.1f}s: {found}; "
                 f"{len(dataset.leakage)} leak(s) across splits. issues.csv, audit.json and audit.html in {out}/")
    return AuditResult(out, ordered(issues), record)


def _open(s: Settings, start: float) -> tuple[Path, float]:
    """Once the data is read: the output folder (an earlier audit there is replaced only with --overwrite), and
    the seconds since `start` (reading the data)."""
    out = Path(s.run.out or default_out(s.data.data, "audit"))
    if (out / "audit.json").exists() and not s.run.overwrite:
        raise UserError(f"{out} already holds an audit; give --overwrite to replace it, or another --out.")
    out.mkdir(parents=True, exist_ok=True)
    return out, time.perf_counter() - start


def _features(records: list[ImageRecord], cache: FeatureCache) -> dict[str, np.ndarray]:
    return {kind: np.stack([cache.get(kind, r.sha256) for r in records]) for kind in SOURCES}


def _duplicate_issues(found: NearDuplicates) -> list[Issue]:
    """One row per image of a cluster but its first (by path): a duplicate of that first image, scored by
    its highest similarity within the cluster."""
    records = found.records
    best = np.zeros(len(records))
    for a, b, s in zip(found.i, found.j, found.similarity):
        best[a], best[b] = max(best[a], s), max(best[b], s)
    members: dict[int, list[int]] = {}
    for k, c in enumerate(found.cluster):
        members.setdefault(int(c), []).append(k)
    issues = []
    for ks in members.values():
        if len(ks) < 2:
            continue
        ks = sorted(ks, key=lambda k: records[k].path)
        keep = records[ks[0]]
        for k in ks[1:]:
            r = records[k]
            where = f", {r.split} vs {keep.split}: leakage" if r.split != keep.split else ""
            issues.append(Issue(r.path, "near_duplicate", float(best[k]),
                                f"near-duplicate of {Path(keep.path).name} (similarity {best[k]:.3f}{where})",
                                r.label, duplicate_of=keep.path))
    return issues


def _label_issues(records: list[ImageRecord], classes: list[str], labels) -> list[Issue]:
    out = []
    for k in np.flatnonzero(labels.flagged):
        r, suggested = records[k], classes[labels.suggested[k]]
        p = labels.probabilities[k, labels.suggested[k]]
        out.append(Issue(r.path, "label", float(labels.score[k]),
                         f"labelled {r.label}; the heads say {suggested} (p {p:.2f})", r.label, suggested))
    return out

