"""A Triton Inference Server model repository made from a run's checked ONNX export.

    RUN/export/triton/                 point `tritonserver --model-repository` here
        NAME/config.pbtxt              onnxruntime backend, dynamic batching, inputs and outputs with their shapes
        NAME/labels.txt                the class names, one per line (Triton's classification extension)
        NAME/1/model.onnx              the run's ONNX export, parity-checked against Keras (deploy/export.py)
        export.json                    what was written, from which ONNX export

The model takes `pixels` (N, S, S, 3) float32 0..255 at the run's size, resized as `predict` resizes
(bilinear with antialiasing); a client decodes and resizes, or uses `inceptune serve`, which speaks the same
protocol and takes encoded images.
"""

from __future__ import annotations

import shutil
from pathlib import Path

TYPES = {1: "TYPE_FP32", 10: "TYPE_FP16", 11: "TYPE_FP64", 7: "TYPE_INT64", 6: "TYPE_INT32", 9: "TYPE_BOOL"}
MAX_BATCH_SIZE = 32


def model_config(name: str, onnx_path: Path, classes: int) -> str:
    """config.pbtxt for the ONNX file: its own input and output names, datatypes and shapes (batch left out);
    the first output names labels.txt when it has one value per class (not a binary run's single sigmoid)."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}

    def tensors(values, labelled: bool) -> str:
        entries = []
        for index, value in enumerate(values):
            tensor = value.type.tensor_type
            dims = [d.dim_value for d in tensor.shape.dim][1:]  # the first is the batch
            labels = '\n    label_filename: "labels.txt"' if labelled and index == 0 and dims == [classes] else ""
            entries.append(f'  {{\n    name: "{value.name}"\n    data_type: {TYPES[tensor.elem_type]}\n'
                           f'    dims: [ {", ".join(str(d) for d in dims)} ]{labels}\n  }}')
        return "[\n" + ",\n".join(entries) + "\n]"

    inputs = [v for v in graph.input if v.name not in initializers]
    return (f'name: "{name}"\nbackend: "onnxruntime"\nmax_batch_size: {MAX_BATCH_SIZE}\n'
            f"input {tensors(inputs, False)}\noutput {tensors(graph.output, True)}\n"
            "dynamic_batching { }\ninstance_group [ { kind: KIND_CPU } ]\n")


def write_repository(onnx_path: Path, target: Path, name: str, classes: list[str]) -> Path:
    """The repository under `target` (replaced); returns NAME/config.pbtxt."""
    if target.exists():
        shutil.rmtree(target)
    version = target / name / "1"
    version.mkdir(parents=True)
    shutil.copyfile(onnx_path, version / "model.onnx")
    (target / name / "labels.txt").write_text("".join(f"{c}\n" for c in classes))
    config = target / name / "config.pbtxt"
    config.write_text(model_config(name, onnx_path, len(classes)))
    return config
