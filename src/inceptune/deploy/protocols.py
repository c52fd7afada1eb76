"""The standard inference protocols `serve` speaks besides its own JSON: requests in, answers out (no HTTP here).

Open Inference Protocol (KServe v2, what Triton and KServe speak):
    inputs   `images` BYTES [-1]: encoded image files (JPEG, PNG, ...), base64 strings in JSON or raw in the
             binary tensor data extension (each element a 4-byte little-endian length, then its bytes);
             `pixels` FP32 [-1, S, S, 3]: RGB values 0..255 at the model's size. A request sends one of them.
    outputs  `probabilities` FP32 [-1, C]; `label` BYTES [-1] (the top class; multi-label runs: the labels at
             or above their thresholds, joined by "|"); `unknown` BOOL [-1] and `ood_score` FP32 [-1] when the
             run has an OOD score; `set` BYTES [-1] when it has prediction sets (the classes that hold the true
             one at the run's coverage, most probable first, joined by "|"). JSON by default; binary where the request asks (`binary_data` on an
             output, or `binary_data_output` on the request), with `Inference-Header-Content-Length`.

TF Serving REST: `instances` (row format) or `inputs` (columnar), each image `{"b64": "..."}` or
`{"images": {"b64": "..."}}`; `:predict` answers one dict of outputs per instance, `:classify` (request
`examples`) answers [label, score] pairs per example, best first. `:predict`'s dicts carry `set` too.

Every malformed request raises ProtocolError with one sentence, answered 400 as `{"error": ...}`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from dataclasses import dataclass, field

import numpy as np

HEADER_LENGTH = "inference-header-content-length"
IMAGES, PIXELS = "images", "pixels"
PROBABILITIES, LABEL, UNKNOWN, OOD_SCORE = "probabilities", "label", "unknown", "ood_score"
SET = "set"  # the prediction set, its classes joined by "|" (a run with sets: evaluation/conformal.py)


class ProtocolError(ValueError):
    """A request that does not follow the protocol, in one sentence."""


@dataclass
class InferRequest:
    id: str | None
    images: list[bytes] | None = None  # encoded image files
    pixels: np.ndarray | None = None  # (N, S, S, 3) float32
    outputs: list[str] | None = None  # the outputs asked for (None: all)
    binary: set[str] = field(default_factory=set)  # the outputs to answer in binary

    @property
    def count(self) -> int:
        return len(self.images) if self.images is not None else len(self.pixels)


def model_metadata(name: str, version: str, image_size: int, classes: list[str], scored: bool,
                   sets: bool = False) -> dict:
    """GET /v2/models/{name}: the inputs and outputs, their datatypes and shapes."""
    outputs = [{"name": PROBABILITIES, "datatype": "FP32", "shape": [-1, len(classes)]},
               {"name": LABEL, "datatype": "BYTES", "shape": [-1]}]
    if scored:
        outputs += [{"name": UNKNOWN, "datatype": "BOOL", "shape": [-1]},
                    {"name": OOD_SCORE, "datatype": "FP32", "shape": [-1]}]
    if sets:
        outputs.append({"name": SET, "datatype": "BYTES", "shape": [-1]})
    return {"name": name, "versions": [version], "platform": "inceptune",
            "inputs": [{"name": IMAGES, "datatype": "BYTES", "shape": [-1]},
                       {"name": PIXELS, "datatype": "FP32", "shape": [-1, image_size, image_size, 3]}],
            "outputs": outputs, "parameters": {"classes": classes}}


def output_names(scored: bool, sets: bool = False) -> list[str]:
    return [PROBABILITIES, LABEL] + ([UNKNOWN, OOD_SCORE] if scored else []) + ([SET] if sets else [])


def parse_infer(body: bytes, header_length: str | None, image_size: int, scored: bool,
                sets: bool = False) -> InferRequest:
    """An Open Inference Protocol request body (JSON, or JSON and then binary tensor data)."""
    if header_length is not None:
        if not (header_length.isascii() and header_length.isdigit()) or int(header_length) > len(body):
            raise ProtocolError(f"{HEADER_LENGTH.title()} must be the length of the JSON part of the body "
                                f"({len(body)} bytes), got '{header_length}'.")
        text, binary = body[:int(header_length)], body[int(header_length):]
    else:
        text, binary = body, b""
    request = _json_object(text)
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise ProtocolError(f"Send exactly one input: '{IMAGES}' (BYTES, encoded images) or '{PIXELS}' (FP32).")
    tensor = inputs[0]
    name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ProtocolError("The input's shape must be a list of non-negative integers.")
    size = _parameters(tensor, "The input's").get("binary_data_size")
    if size is not None and (not isinstance(size, int) or size != len(binary)):
        raise ProtocolError(f"The input's binary_data_size ({size}) does not match the {len(binary)} bytes after "
                            "the JSON header.")
    if size is None and binary:
        raise ProtocolError("The body has binary data after the JSON header, but no input names its "
                            "binary_data_size.")
    parsed = InferRequest(id=request.get("id"))
    if name == IMAGES:
        if datatype != "BYTES" or len(shape) != 1:
            raise ProtocolError(f"'{IMAGES}' is BYTES with shape [N] (one encoded image each), got {datatype} "
                                f"{shape}.")
        parsed.images = _bytes_elements(binary) if size is not None else _base64_elements(tensor.get("data"))
        if len(parsed.images) != shape[0]:
            raise ProtocolError(f"'{IMAGES}' has shape [{shape[0]}] but holds {len(parsed.images)} elements.")
    elif name == PIXELS:
        expected = [image_size, image_size, 3]
        if datatype != "FP32" or len(shape) != 4 or shape[1:] != expected:
            raise ProtocolError(f"'{PIXELS}' is FP32 with shape [N, {image_size}, {image_size}, 3], got {datatype} "
                                f"{shape}.")
        parsed.pixels = _pixels(binary if size is not None else tensor.get("data"), shape)
    else:
        raise ProtocolError(f"Unknown input '{name}'; this model takes '{IMAGES}' or '{PIXELS}'.")
    if parsed.count == 0:
        raise ProtocolError("The request holds no image.")
    everything_binary = bool(_parameters(request, "The request's").get("binary_data_output"))
    known = output_names(scored, sets)
    asked = request.get("outputs")
    if asked is not None:
        if not isinstance(asked, list) or not all(isinstance(o, dict) for o in asked):
            raise ProtocolError("'outputs' must be a list of {\"name\": ...} objects.")
        parsed.outputs = [o.get("name") for o in asked]
        unknown = [n for n in parsed.outputs if n not in known]
        if unknown:
            raise ProtocolError(f"Unknown output '{unknown[0]}'; this model answers {', '.join(known)}.")
        parsed.binary = {o["name"] for o in asked if _parameters(o, f"The '{o['name']}' output's").get(
            "binary_data", everything_binary)}
    elif everything_binary:
        parsed.binary = set(known)
    return parsed


def infer_response(model: str, version: str, request: InferRequest, outputs: dict[str, np.ndarray]
                   ) -> tuple[bytes, dict[str, str]]:
    """The response body and its extra headers: JSON, then the binary outputs in order when any are binary."""
    tensors, chunks = [], []
    for name in request.outputs or list(outputs):
        value = outputs[name]
        tensor = {"name": name, "datatype": _datatype(value), "shape": list(value.shape)}
        if name in request.binary:
            data = _serialize(value)
            tensor["parameters"] = {"binary_data_size": len(data)}
            chunks.append(data)
        else:
            tensor["data"] = [v.decode() if isinstance(v, bytes) else v for v in value.reshape(-1).tolist()]
        tensors.append(tensor)
    response = {"model_name": model, "model_version": version, "outputs": tensors}
    if request.id is not None:
        response["id"] = request.id
    header = json.dumps(response).encode()
    if not chunks:
        return header, {}
    return header + b"".join(chunks), {HEADER_LENGTH: str(len(header))}


def parse_tf_serving(body: bytes, verb: str) -> list[bytes]:
    """The encoded images of a TF Serving REST request (`:predict` instances/inputs, `:classify` examples)."""
    request = _json_object(body)
    key = "examples" if verb == "classify" else ("instances" if "instances" in request else "inputs")
    items = request.get(key)
    if isinstance(items, dict) and verb != "classify":  # columnar with a named input
        items = items.get(IMAGES)
    if not isinstance(items, list) or not items:
        expected = ('{"examples": [{"images": {"b64": "..."}}]}' if verb == "classify"
                    else '{"instances": [{"b64": "..."}]}')
        raise ProtocolError(f"Send the images as {expected}.")
    images = []
    for item in items:
        if isinstance(item, dict) and IMAGES in item:
            item = item[IMAGES]
        if not isinstance(item, dict) or not isinstance(item.get("b64"), str):
            raise ProtocolError('Each image must be {"b64": "<base64 of the file>"}.')
        images.append(_b64(item["b64"]))
    return images


def tf_serving_predictions(outputs: dict[str, np.ndarray]) -> list[dict]:
    """One dict of outputs per image, as TF Serving answers a model with several named outputs."""
    count = len(outputs[PROBABILITIES])
    return [{name: (value[i].decode() if isinstance(value[i], bytes) else value[i].tolist())
             for name, value in outputs.items()} for i in range(count)]


def tf_serving_classes(classes: list[str], probabilities: np.ndarray) -> list[list[list]]:
    """`:classify` results: [label, score] for every class of each image, best first."""
    order = np.argsort(-probabilities, axis=1, kind="stable")
    return [[[classes[j], float(row[j])] for j in ranks] for row, ranks in zip(probabilities, order)]


def _json_object(text: bytes) -> dict:
    try:
        request = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("The request is not valid JSON.") from None
    except RecursionError:  # json.loads recurses once per nested array or object
        raise ProtocolError("The request's JSON is nested too deeply.") from None
    if not isinstance(request, dict):
        raise ProtocolError("The request must be a JSON object.")
    return request


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("An image is not valid base64.") from None


def _base64_elements(data) -> list[bytes]:
    if not isinstance(data, list) or not all(isinstance(d, str) for d in data):
        raise ProtocolError(f"'{IMAGES}' data must be a list of base64 strings, one per encoded image.")
    return [_b64(d) for d in data]


def _bytes_elements(data: bytes) -> list[bytes]:
    elements, offset = [], 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise ProtocolError("The binary BYTES tensor is cut off inside an element's length.")
        (length,) = struct.unpack_from("<I", data, offset)
        offset += 4
        if offset + length > len(data):
            raise ProtocolError("The binary BYTES tensor is cut off inside an element.")
        elements.append(data[offset:offset + length])
        offset += length
    return elements


def _parameters(item: dict, what: str) -> dict:
    """An object's optional `parameters`: a JSON object, or a ProtocolError."""
    found = item.get("parameters")
    if found is None:
        return {}
    if not isinstance(found, dict):
        raise ProtocolError(f"{what} 'parameters' must be a JSON object.")
    return found


def _pixels(data, shape: list[int]) -> np.ndarray:
    expected = math.prod(shape)  # Python's integers: a huge shape cannot wrap around to a small size
    if isinstance(data, bytes):
        if len(data) != 4 * expected:
            raise ProtocolError(f"'{PIXELS}' of shape {shape} needs {4 * expected} bytes of FP32, got {len(data)}.")
        values = np.frombuffer(data, dtype="<f4")
    else:
        try:
            values = np.asarray(data, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError):
            raise ProtocolError(f"'{PIXELS}' data must be numbers.") from None
        if values.size != expected:
            raise ProtocolError(f"'{PIXELS}' of shape {shape} needs {expected} numbers, got {values.size}.")
    if not np.isfinite(values).all():
        raise ProtocolError(f"'{PIXELS}' holds a value that is not a finite number.")
    return values.reshape(shape).astype(np.float32)


def _datatype(value: np.ndarray) -> str:
    if value.dtype == np.bool_:
        return "BOOL"
    return "BYTES" if value.dtype == object else "FP32"


def _serialize(value: np.ndarray) -> bytes:
    if value.dtype == object:
        return b"".join(struct.pack("<I", len(v)) + v for v in value.reshape(-1))
    return np.ascontiguousarray(value, dtype="<f4" if value.dtype != np.bool_ else np.bool_).tobytes()


def model_name(run_name: str) -> str:
    """The name a run is served and exported under (v1/v2 routes, Triton's repository): its folder's name with
    only letters, digits, '-', '_' and '.'."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_name).strip("._")
    return cleaned or "model"
