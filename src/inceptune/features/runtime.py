"""Phase 1 extraction on the fastest exact runtime: Keras, or OpenVINO where it matches Keras and is faster here.

The extractor (features/extract.build_extractor: raw pixels -> {kind: array}) is converted to OpenVINO IR once
per feature space and set of kinds, into SPACE/runtimes/extract-KEY/model.xml. Then, once per machine:

- the first batch runs on both runtimes, and every kind must agree within EXACT of its scale (the kind's largest
  value, at least 1) on every image: the cache keeps features in float16, about 1e-3 of their scale, and a bound
  on absolute differences refused OpenVINO by chance where kernels summed in another order (1.1e-4 on features
  of a larger scale, in one of a few runs on a 2-core Xeon beside another test);
- the second batch runs on both again, timed (each runtime warmed up by the first), and the faster one wins;
- the verdict goes to SPACE/runtimes/extract-KEY/choice.json under the machine's description (machine.py).

Later extractions in the space go straight to the winner. OpenVINO runs in throughput mode: a batch is split
over the infer requests the CPU plugin finds best (one stream per few cores), in FP32 explicitly (on CPUs with
bfloat16 units it would otherwise compute in bf16, about 1e-2 off). Under a mixed-precision policy Keras
always runs: its features are another space (training/extraction.feature_cache).

With `auto`, a space with no converted extractor stays on Keras below MIN_IMAGES images to compute: the
conversion (about 6 s) and the check (two batches run twice) would cost about what they save.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import keras
import numpy as np

from inceptune import console, hooks
from inceptune.atomic import atomic_write_json
from inceptune.errors import UserError
from inceptune.machine import installed_version, machine

EXACT = 1e-4  # largest difference from Keras on any output of any image, relative to the kind's scale (at least 1)
MIN_IMAGES = 300  # auto converts only for at least this many images: ~6 s to convert, ~4 batches to check and time
CHOICE_FILE = "choice.json"


class ExtractorRunner:
    """Runs the extractor on batches of raw pixels -> {kind: float32 array}, on the runtime chosen for it.

    `choice` is auto (the faster of the exact runtimes, by timing), keras, or openvino (used once it has been
    found exact; Keras otherwise, with a warning). `name` is the runtime that answers now.
    """

    def __init__(self, extractor: keras.Model, kinds: list[str], space_dir: Path, choice: str, todo: int):
        self.extractor, self.kinds, self.choice = extractor, kinds, choice
        self.name, self._compiled, self._queue, self._stage = "keras", None, None, None
        self.folder = Path(space_dir) / "runtimes" / f"extract-{_key(kinds, extractor.input.shape[1])}"
        self._machine = machine()
        if choice == "keras" or keras.config.dtype_policy().name != "float32":
            return
        if installed_version("openvino") is None:
            if choice == "openvino":
                raise UserError("--extract-runtime openvino needs OpenVINO: pip install 'inceptune[openvino]'.")
            return
        verdict = self._remembered()
        if verdict is not None:
            if verdict["runtime"] == "openvino" or (choice == "openvino" and verdict["max_abs_diff"] <= EXACT):
                self._compile()
                self.name = "openvino"
            elif choice == "openvino":
                console.warn(f"OpenVINO's features differed from Keras' by {verdict['max_abs_diff']:.1e} on this "
                             f"machine (at most {EXACT:g} allowed); extracting with Keras.")
            return
        if choice == "openvino" or todo >= MIN_IMAGES or (self.folder / "model.xml").is_file():
            self._stage = "check"

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        if self._stage is None:
            return self._openvino(images) if self.name == "openvino" else self._keras(images)
        if self._stage == "check":
            expected = self._keras(images)
            try:
                self._compile()
                got = self._openvino(images)
            except Exception as exc:  # noqa: BLE001 (a model OpenVINO cannot convert or run: Keras answers)
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
                if self.choice == "openvino":
                    raise UserError(f"OpenVINO could not run the feature extractor ({reason}).") from None
                console.warn(f"OpenVINO could not run the feature extractor ({reason}); extracting with Keras.")
                self._stage = None
                return expected
            self._diff, self._checked = _max_diff(expected, got, self.kinds), len(images)
            self._stage = "time" if self._diff <= EXACT and self.choice == "auto" else None
            if self._stage is None:
                self._decide(None, None)
            return expected
        if len(images) != self._checked:  # Keras would trace this shape again: time a batch like the first
            return self._keras(images)
        self._stage = None  # a second batch like the first: time both, each warmed up by it
        start = time.perf_counter()
        expected = self._keras(images)
        keras_s = time.perf_counter() - start
        start = time.perf_counter()
        got = self._openvino(images)
        openvino_s = time.perf_counter() - start
        self._diff = max(self._diff, _max_diff(expected, got, self.kinds))
        self._decide(keras_s / len(images), openvino_s / len(images))
        return got if self.name == "openvino" else expected

    def _keras(self, images):
        return {kind: np.asarray(value, np.float32) for kind, value in self.extractor.predict_on_batch(images).items()}

    def _openvino(self, images):
        chunks = np.array_split(np.asarray(images, np.float32), min(self._requests, len(images)))
        self._answers = {}
        for i, chunk in enumerate(chunks):
            self._queue.start_async({0: chunk}, i)
        self._queue.wait_all()
        return {kind: np.concatenate([self._answers[i][self._names.index(kind)] for i in range(len(chunks))])
                for kind in self.kinds if kind in self._names}

    def _compile(self):
        import openvino as ov

        if self._compiled is not None:
            return
        if not (self.folder / "model.xml").is_file():
            self._convert(ov)
        self._compiled = ov.Core().compile_model(str(self.folder / "model.xml"), "CPU", {
            "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "THROUGHPUT"})
        self._requests = max(1, int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self._queue = ov.AsyncInferQueue(self._compiled, self._requests)
        self._names = [output.get_any_name() for output in self._compiled.outputs]
        self._queue.set_callback(lambda request, i: self._answers.__setitem__(
            i, [request.get_output_tensor(j).data.copy() for j in range(len(self._compiled.outputs))]))

    def _convert(self, ov):
        size = self.extractor.input.shape[1]
        start = time.perf_counter()
        console.info("Converting the feature extractor to OpenVINO (once per feature space)...")
        model = openvino_model(self.extractor, size)
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=self.folder.parent))
        try:
            ov.save_model(model, str(staging / "model.xml"), compress_to_fp16=False)
            self.folder.mkdir(exist_ok=True)
            for name in ("model.bin", "model.xml"):  # the weights first: model.xml is there only when whole
                os.replace(staging / name, self.folder / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        hooks.reached("extractor_converted")
        console.info(f"Converted the feature extractor to OpenVINO in {time.perf_counter() - start:.1f}s.")

    def _remembered(self) -> dict | None:
        return _read(self.folder).get(_machine_key(self._machine))

    def _decide(self, keras_s: float | None, openvino_s: float | None) -> None:
        exact = self._diff <= EXACT
        faster = exact and (keras_s is None or openvino_s < keras_s)  # not timed: openvino was asked for
        self.name = "openvino" if faster else "keras"
        verdict = {"runtime": self.name, "max_abs_diff": self._diff, "exact": exact, "machine": self._machine,
                   "keras_s_per_image": keras_s, "openvino_s_per_image": openvino_s, "chosen_by": self.choice}
        if self.choice == "auto":  # a forced choice is not a measurement of which is faster
            choices = _read(self.folder)
            choices[_machine_key(self._machine)] = verdict
            atomic_write_json(self.folder / CHOICE_FILE, choices)
        hooks.reached("extraction_runtime_chosen")
        if not exact:
            console.warn(f"OpenVINO's features differ from Keras' by {self._diff:.1e} (at most {EXACT:g} allowed); "
                         "extracting with Keras.")
        elif keras_s is None:
            console.info(f"Extraction runtime: openvino (within {self._diff:.1e} of Keras).")
        else:
            console.info(f"Extraction runtime: {self.name} (OpenVINO within {self._diff:.1e} of Keras; "
                         f"{1 / keras_s:.1f} img/s on Keras, {1 / openvino_s:.1f} on OpenVINO here).")


def _max_diff(expected: dict, got: dict, kinds: list[str]) -> float:
    if any(kind not in got or got[kind].shape != expected[kind].shape for kind in kinds):
        return float("inf")
    return max(float(np.abs(got[kind] - expected[kind]).max(initial=0.0))
               / max(1.0, float(np.abs(expected[kind]).max(initial=0.0))) for kind in kinds)


def _key(kinds: list[str], image_size: int) -> str:
    what = {"kinds": sorted(kinds), "image_size": image_size, "keras": keras.__version__,
            "openvino": installed_version("openvino")}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def _machine_key(description: dict) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:16]


def _read(folder: Path) -> dict:
    try:
        return json.loads((folder / CHOICE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def openvino_model(model: keras.Model, size: int):
    """An OpenVINO model of a Keras model of (N, size, size, 3) pixels, any batch size (the extractor here, and
    deploy/export.py's serving model)."""
    import openvino as ov

    with warnings.catch_warnings():  # tracing calls a one-input model with a tuple, which Keras remarks on
        warnings.filterwarnings("ignore", message="The structure of `inputs`", category=UserWarning)
        converted = ov.convert_model(model, example_input=np.zeros((1, size, size, 3), np.float32))
    converted.reshape([-1, size, size, 3])
    return converted
