"""What every benchmark script shares: the options of its command line and how it saves its results."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def parser(doc: str, data_help: str = "a folder of class folders of photos") -> argparse.ArgumentParser:
    """A parser with the options every script takes: --data, --weights and --json."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help=data_help)
    parser.add_argument("--weights", required=True, help="an Inception-v3 weights file without the top")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser


def save(result: dict, path: Path | None) -> None:
    if path:
        path.write_text(json.dumps(result, indent=2, default=str))
