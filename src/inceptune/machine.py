"""What makes timings differ between machines: the CPU, the cores this process may use, the runtimes' versions.

Timed choices (inference/fastest.py, features/runtime.py) are remembered under this description, so a run folder or
a cache copied to another machine is timed again there.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

RUNTIME_PACKAGES = ("onnxruntime", "openvino")


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {package: version for package in RUNTIME_PACKAGES if (version := installed_version(package))}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": cores, "system": platform.system(), **versions}


def installed_version(package: str) -> str | None:
    """The installed version of `package`, or None when it is not installed."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
