"""Labels and input normalisation inside a LiteRT (.tflite) file, so that a phone app needs nothing else.

Two places, both standard in the format:
- a metadata entry named METADATA_NAME in the flatbuffer's `metadata` list (as the converter's own
  `min_runtime_version` and `CONVERSION_METADATA` are), holding JSON: the classes and what labels.json says
  (multi-label thresholds, the OOD threshold), the input (name, shape, dtype, value range, mean and std to
  apply, resize method) and the outputs;
- labels.txt, one class per line, in a zip archive appended to the file (how TFLite's associated files travel;
  interpreters ignore it, `zipfile` and the Task Library read it).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

METADATA_NAME = "inceptune"


def litert_description(labels: dict, image_size: int, scored: bool) -> dict:
    outputs = [{"name": "probabilities", "shape": [-1, len(labels["classes"])]}]
    if scored:
        outputs.append({"name": "ood_score", "shape": [-1, 1], "unknown_above": labels.get("ood", {}).get("threshold")})
    return {**labels, "input": {
        "name": "pixels", "shape": [-1, image_size, image_size, 3], "dtype": "float32", "range": [0, 255],
        "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0],  # RGB values as decoded: the model scales them itself
        "resize": "bilinear with antialiasing to image_size x image_size"}, "outputs": outputs,
        "associated_files": ["labels.txt"]}


def add_litert_metadata(path: Path, description: dict) -> None:
    """Write `description` into the .tflite file at `path`, and append labels.txt."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    data = Path(path).read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(description).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name not in (METADATA_NAME, METADATA_NAME.encode())]
    model.metadata.append(entry)
    builder = flatbuffers.Builder(len(data) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    Path(path).write_bytes(bytes(builder.Output()))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("labels.txt", "".join(f"{c}\n" for c in description["classes"]))


def read_litert_metadata(path: Path) -> dict | None:
    """The description written by add_litert_metadata, or None."""
    from tensorflow.lite.python import schema_py_generated as schema

    data = Path(path).read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() in (METADATA_NAME, METADATA_NAME.encode()):
            return json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
    return None
