"""What `train` ends with (`--export auto`): the fastest checked export of the run on this machine.

    one FP32 export, parity-checked against Keras: OpenVINO, converted straight from the model in seconds, or
    ONNX where OpenVINO is not installed (tf2onnx takes about 20 s for Inception-v3; `inceptune export
    --format onnx` makes it on demand, and auto times it beside the others once it is there)
    -> its bf16 (OpenVINO, where this CPU computes bf16) and int8 variants, each kept only when it answers
       like the FP32 model on the held-out photos (deploy/accuracy.py): accuracy and every output
    -> every kept export timed here (inference/fastest.py); the fastest, and the fastest FP32 one (exact, for
       whoever wants it), stay in RUN/export/; the others are removed
    -> RUN/export/auto.json remembers the choice for this machine, so `predict`, `serve` and
       `inceptune.load(..., runtime="auto")` start on it without timing again

The model, the run's photos and Keras' answers on them are loaded once for all of it (deploy/reference.py).
A runtime that is not installed is skipped with a message; an export that
fails its check is not kept and says why. None of this can undo the run:
the model and its reports are written before it starts.
"""

from __future__ import annotations

import json
import shutil
from importlib.util import find_spec
from pathlib import Path

from inceptune import console
from inceptune.deploy.export import export
from inceptune.deploy.reference import Reference
from inceptune.errors import UserError
from inceptune.inference.fastest import FORMATS, candidates, remember, time_exports
from inceptune.inference.runtimes import BF16
from inceptune.vocabulary.limits import MAX_ACCURACY_DROP

PACKAGES = {"onnx": ("tf2onnx", "onnxruntime"), "openvino": ("openvino",)}  # what converting and running need
VARIANTS = {"openvino": (BF16, "int8"), "onnx": ("int8",)}  # tried after the FP32 export, in this order


def export_fastest(run: str | Path, max_accuracy_drop: float = MAX_ACCURACY_DROP) -> dict:
    """Write the run's exports as above (a bf16 or int8 one kept when it loses at most `max_accuracy_drop` and
    answers like FP32); returns {"chosen": name or None, "kept": [...], "seconds_per_image": {...}}."""
    run = Path(run)
    installed = [fmt for fmt in FORMATS if all(find_spec(package) for package in PACKAGES[fmt])]
    if not installed:
        console.info("ONNX Runtime and OpenVINO are not installed, so Keras answers this run; "
                     "pip install 'inceptune[onnx,openvino]' for exports that run up to 3x faster.")
        return {"chosen": None, "kept": [], "seconds_per_image": {}}
    fmt = "openvino" if "openvino" in installed else "onnx"  # the one converted in seconds, where there is a choice
    variants = VARIANTS[fmt]
    console.info(f"Exporting for speed ({fmt}; --export none skips this): FP32 first, then "
                 f"{' and '.join(variants)} where they answer like FP32 on the held-out photos.")
    reference = Reference.open(run)
    if _made(reference, fmt, None, max_accuracy_drop):
        for quantize in variants:
            _made(reference, fmt, quantize, max_accuracy_drop)
    found = candidates(run)
    if not found:
        return {"chosen": None, "kept": [], "seconds_per_image": {}}
    timings, best = time_exports(run, found)
    if best is None:
        return {"chosen": None, "kept": [], "seconds_per_image": timings}
    exact = [name for name in timings if found[name].get("quantize") is None]
    keep = {best[0], *([min(exact, key=timings.get)] if exact else [])}
    for name in set(found) - keep:
        shutil.rmtree(run / "export" / name, ignore_errors=True)
    remember(run, {name: found[name] for name in keep}, best[0], timings)
    removed = sorted(set(found) - keep)
    console.info(f"Runtime auto on this machine: {best[0]} ({1 / timings[best[0]]:.1f} img/s); kept "
                 f"{', '.join(sorted(keep))} in {run / 'export'}"
                 + (f"; removed {', '.join(removed)} (slower here)." if removed else "."))
    return {"chosen": best[0], "kept": sorted(keep), "seconds_per_image": timings}


def deployed_record(run: str | Path, chosen: dict) -> dict:
    """What metrics.json says is deployed: the runtime `predict`, `serve` and `evaluate` answer from by default
    (export_fastest's choice, else Keras) and its checks on the held-out photos beside FP32's."""
    name = chosen.get("chosen")
    record = {"runtime": name or "keras", "seconds_per_image": chosen.get("seconds_per_image", {})}
    if name:
        report = json.loads((Path(run) / "export" / name / "export.json").read_text())
        record.update({key: report.get(key) for key in ("quantize", "max_abs_diff", "top1_agreement", "accuracy",
                                                         "outputs", "ood_threshold")})
    return record


def _made(reference: Reference, fmt: str, quantize: str | None, max_accuracy_drop: float) -> bool:
    name = fmt if quantize is None else f"{fmt}-{quantize}"
    try:
        export(str(reference.folder.path), fmt, quantize=quantize, max_accuracy_drop=max_accuracy_drop,
               reference=reference, candidate=True)
    except UserError as exc:
        console.warn(f"no {name} export: {exc}")
        return False
    return True
