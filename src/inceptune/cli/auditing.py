"""audit: a dataset's label errors, near-duplicates, outliers and bad photos, on its cached features."""

from __future__ import annotations

import json

import inceptune
from inceptune.cli.settings_commands import json_flag, settings_command


def _show_audit(result, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.record, indent=2))
        return
    counts = result.record["counts"]
    print(", ".join(f"{name} {n}" for name, n in counts.items() if n) or "no issues found")
    print(f"issues: {result.path / 'issues.csv'}; review and pick fixes: {result.path / 'audit.html'}")


audit = settings_command(
    "audit", lambda data, **kw: inceptune.audit(data, **kw),
    "Audit a dataset on its cached features: label errors (cleanlab), near-duplicates and the "
    "splits they leak across, outliers, bad photos (CleanVision); writes issues.csv, audit.json "
    "and audit.html, whose accepted fixes train --exclude/--relabel apply.",
    helps={"out": "Folder for issues.csv, audit.json and audit.html (default runs/audit-DATA-TIME).",
           "overwrite": "Replace an audit in --out."},
    extra=[json_flag("Print audit.json.")], show=_show_audit)
