"""Rewrite tests/durations.json from a test run's output: `./run test --durations=0 > log; python
scripts/update_durations.py log`. Seconds per test (setup + call + teardown), tests over half a second."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

LINE = re.compile(r"^([\d.]+)s (?:setup|call|teardown)\s+(\S.*?)\s*$")


def main(log: str) -> None:
    seconds: Counter[str] = Counter()
    for line in Path(log).read_text().splitlines():
        found = LINE.match(line)
        if found:
            seconds[found.group(2)] += float(found.group(1))
    kept = {name: round(value, 1) for name, value in sorted(seconds.items()) if value >= 0.5}
    target = Path(__file__).resolve().parents[1] / "tests" / "durations.json"
    target.write_text(json.dumps(kept, indent=1) + "\n")
    print(f"{len(kept)} tests in {target}")


if __name__ == "__main__":
    main(sys.argv[1])
