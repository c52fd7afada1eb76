"""`--runtime auto`: the fastest checked export of a run on this machine, found by timing, not by a fixed order.

Candidates are the run's exports in RUN/export/<name>/ made from this very
model.keras (export.json's sha256) whose runtime is installed: FP32 ONNX and
OpenVINO (parity with Keras within 1e-4), and bf16 (OpenVINO, where this CPU
computes it) and int8 ones whose checks on the held-out photos passed. fp16 (no accuracy check, and computed in FP32
on CPUs) and LiteRT (for phones) are not candidates; with none, Keras answers.

Each candidate runs one warm-up batch and then ROUNDS timed batches of BATCH
generated images; the lowest median time per image wins. The choice is
remembered in RUN/export/auto.json by machine (CPU model, cores, the
runtimes' versions) and by the set of candidates, so the timing happens once
per machine, and again only when an export is added, replaced or removed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from inceptune import console, hooks
from inceptune.atomic import atomic_write_json
from inceptune.errors import UserError
from inceptune.inference.runtimes import CHECKED, EXPORTED, FILES, QUANTIZED, RUNTIMES, load_runtime
from inceptune.machine import machine
from inceptune.models.weights import file_fingerprint

FORMATS = ("onnx", "openvino")
BATCH = 8
ROUNDS = 3
CHOICES_FILE = "auto.json"


def candidates(run_path: Path) -> dict[str, dict]:
    """name -> export.json of every export `auto` may choose."""
    exports = Path(run_path) / "export"
    model = Path(run_path) / "model.keras"
    if not exports.is_dir() or not model.is_file():
        return {}
    digest = file_fingerprint(model)
    found = {}
    for folder in sorted(p for p in exports.iterdir() if p.is_dir()):
        try:
            report = json.loads((folder / "export.json").read_text())
        except (OSError, ValueError):
            continue
        fmt, quantize = report.get("format"), report.get("quantize")
        checked = quantize is None or (quantize in CHECKED and (report.get("accuracy") or {}).get("passed")
                                       and (report.get("outputs") or {}).get("passed"))  # every output checked
        if fmt in FORMATS and checked and report.get("model_sha256") == digest and (folder / FILES[fmt]).is_file():
            found[folder.name] = report
    return found


def _key(description: dict, found: dict[str, dict]) -> str:
    what = {"machine": description, "exports": {n: [r.get("model_sha256"), r.get("bytes")] for n, r in found.items()}}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def seconds_per_image(infer: Callable[[np.ndarray], object], image_size: int) -> float:
    """Median seconds per image of `infer` on BATCH generated images, after a warm-up batch."""
    pixels = np.random.default_rng(0).uniform(0, 255, (BATCH, image_size, image_size, 3)).astype("float32")
    infer(pixels)
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        infer(pixels)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) / BATCH


def fastest(run_path: Path) -> tuple[str, Callable[[np.ndarray], object]] | None:
    """(name, infer) of the fastest candidate export on this machine, or None when there is none."""
    run_path = Path(run_path)
    found = candidates(run_path)
    if not found:
        return None
    remembered = _read(run_path).get(_key(machine(), found), {}).get("chosen")
    if remembered in found:
        try:
            return remembered, _load(run_path, remembered, found[remembered])
        except (ImportError, UserError):
            pass  # its runtime was uninstalled since, or this CPU does not compute its precision: time again
    timings, best = time_exports(run_path, found)
    if best is None:
        return None
    remember(run_path, found, best[0], timings)
    return best


def time_exports(run_path: Path, found: dict[str, dict]) -> tuple[dict[str, float], tuple | None]:
    """Seconds per image of each export in `found` whose runtime is installed, and (name, infer) of the fastest."""
    best, timings = None, {}
    for name, report in found.items():
        try:
            infer = _load(run_path, name, report)
        except (ImportError, UserError):  # not installed here, or a precision this CPU does not compute (bf16)
            continue
        timings[name] = seconds_per_image(infer, int(report["image_size"]))
        if best is None or timings[name] < timings[best[0]]:
            best = (name, infer)
        del infer
    if timings:
        hooks.reached("runtimes_timed", run=str(run_path), seconds_per_image=dict(timings))
        console.info("Runtime auto timed " + ", ".join(f"{n} {1 / s:.1f} img/s" for n, s in timings.items())
                     + f" on this machine: {best[0]}")
    return timings, best


def remember(run_path: Path, found: dict[str, dict], chosen: str, timings: dict[str, float]) -> None:
    """Record in RUN/export/auto.json that `chosen` is auto's answer here, among exactly `found`."""
    description = machine()
    choices = {**_read(run_path), _key(description, found): {
        "chosen": chosen, "seconds_per_image": timings, "exports": sorted(found), "machine": description,
        "batch": BATCH, "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}}
    try:
        atomic_write_json(Path(run_path) / "export" / CHOICES_FILE, choices)
    except OSError:  # a read-only run folder: time again next time
        console.warn(f"could not remember the runtime choice in {run_path / 'export'}; it is timed again next time")


def _load(run_path: Path, name: str, report: dict):
    return load_runtime(report["format"], run_path / "export" / name / FILES[report["format"]], report.get("quantize"))


def _read(run_path: Path) -> dict:
    try:
        return json.loads((run_path / "export" / CHOICES_FILE).read_text())
    except (OSError, ValueError):
        return {}


def export_ood_threshold(run_path: Path, name: str, run_threshold: float) -> float:
    """The OOD threshold the export `name` answers "none of these" at: its own (export.json, fitted on its own
    held-out scores), else the run's."""
    try:
        found = json.loads((Path(run_path) / "export" / name / "export.json").read_text()).get("ood_threshold")
    except (OSError, ValueError):
        return run_threshold
    return run_threshold if found is None else float(found)


def find_runtime(run_path: Path, runtime: str) -> tuple[str, Callable[[np.ndarray], object]] | None:
    """(name, infer) for `runtime` from RUN/export/, or None when Keras itself answers (keras, or auto with no
    candidate)."""
    if runtime == "keras":
        return None
    if runtime == "auto":
        return fastest(run_path)
    fmt, _, quantize = runtime.partition("-")
    if fmt not in EXPORTED or (quantize and quantize not in QUANTIZED):
        raise UserError(f"--runtime must be one of {', '.join(RUNTIMES)} (or a quantized export such as onnx-int8), "
                        f"got {runtime}.")
    artefact = Path(run_path) / "export" / runtime / FILES[fmt]
    if not artefact.exists():
        how = f"--format {fmt}" + (f" --quantize {quantize}" if quantize else "")
        raise UserError(f"{run_path} has no {runtime} export; run `inceptune export {run_path} {how}` first.")
    try:
        return runtime, load_runtime(fmt, artefact, quantize or None)
    except ImportError:
        raise UserError(f"--runtime {runtime} needs its package: pip install 'inceptune[{fmt}]'.") from None
