"""The inference protocols' requests and answers, against what the real tritonclient sends and reads."""

import base64
import json
import re

import numpy as np
import pytest

from inceptune.deploy import protocols
from inceptune.errors import UserError
from inceptune.serving.keys import api_keys, check_exposure

http = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is not installed")
from tritonclient.http import InferResult  # noqa: E402
from tritonclient.http._utils import _get_inference_request  # noqa: E402

SIZE = 75


def _triton_body(inputs, outputs=None):
    """The body and header length tritonclient would POST for these inputs (its own code)."""
    body, json_size = _get_inference_request(inputs, "", outputs, 0, False, False, 0, None, None)
    return body, None if json_size is None else str(json_size)


def _answers(count: int, scored: bool = True) -> dict:
    outputs = {protocols.PROBABILITIES: np.full((count, 3), 1 / 3, np.float32),
               protocols.LABEL: np.array([b"ant"] * count, dtype=object)}
    if scored:
        outputs[protocols.UNKNOWN] = np.array([True] * count)
        outputs[protocols.OOD_SCORE] = np.arange(count, dtype=np.float32)
    return outputs


def test_tritonclient_binary_bytes_are_read_and_binary_answers_are_what_it_reads():
    files = [b"\xff\xd8first", b"", b"\x89PNG-second"]
    images = http.InferInput(protocols.IMAGES, [3], "BYTES")
    images.set_data_from_numpy(np.array(files, dtype=object), binary_data=True)
    body, length = _triton_body([images])
    request = protocols.parse_infer(body, length, SIZE, scored=True)
    assert request.images == files and request.binary == set(protocols.output_names(True))  # binary_data_output
    answers = _answers(3)
    content, headers = protocols.infer_response("m", "1", request, answers)
    result = InferResult.from_response_body(content, header_length=int(headers[protocols.HEADER_LENGTH]))
    for name, value in answers.items():
        np.testing.assert_array_equal(result.as_numpy(name), value)


def test_json_base64_images_pixels_and_chosen_outputs():
    body = json.dumps({"id": "r1", "inputs": [{"name": "images", "datatype": "BYTES", "shape": [2],
                                               "data": [base64.b64encode(b"one").decode(),
                                                        base64.b64encode(b"two").decode()]}],
                       "outputs": [{"name": "label"}, {"name": "probabilities",
                                                       "parameters": {"binary_data": True}}]}).encode()
    request = protocols.parse_infer(body, None, SIZE, scored=False)
    assert request.images == [b"one", b"two"] and request.outputs == ["label", "probabilities"]
    content, headers = protocols.infer_response("m", "1", request, _answers(2, scored=False))
    result = InferResult.from_response_body(content, header_length=int(headers[protocols.HEADER_LENGTH]))
    assert result.get_response()["id"] == "r1"
    assert [o["name"] for o in result.get_response()["outputs"]] == ["label", "probabilities"]
    assert list(result.as_numpy("label")) == ["ant", "ant"]  # JSON strings
    assert result.as_numpy("probabilities").shape == (2, 3)

    pixels = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype(np.float32)
    tensor = http.InferInput(protocols.PIXELS, list(pixels.shape), "FP32")
    tensor.set_data_from_numpy(pixels, binary_data=False)
    body, length = _triton_body([tensor], [http.InferRequestedOutput("probabilities", binary_data=False)])
    request = protocols.parse_infer(body, length, SIZE, scored=True)
    np.testing.assert_array_equal(request.pixels, pixels)
    content, headers = protocols.infer_response("m", "1", request, _answers(2))
    assert headers == {} and [o["name"] for o in json.loads(content)["outputs"]] == ["probabilities"]


@pytest.mark.parametrize("body, length, message", [
    (b"{not json", None, "not valid JSON"),
    (b"[]", None, "JSON object"),
    (json.dumps({"inputs": []}).encode(), None, "exactly one input"),
    (json.dumps({"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1], "data": ["AA=="]}]}).encode(), None,
     "Unknown input 'x'"),
    (json.dumps({"inputs": [{"name": "images", "datatype": "FP32", "shape": [1], "data": [1.0]}]}).encode(), None,
     "'images' is BYTES"),
    (json.dumps({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "data": ["%%%"]}]}).encode(),
     None, "not valid base64"),
    (json.dumps({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [2], "data": ["AA=="]}]}).encode(),
     None, "holds 1 elements"),
    (json.dumps({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 10, 10, 3], "data": []}]}).encode(),
     None, "shape [N, 75, 75, 3]"),
    (json.dumps({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 75, 75, 3], "data": [1]}]}).encode(),
     None, "needs 16875 numbers"),
    (json.dumps({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "data": ["AA=="]}],
                 "outputs": [{"name": "logits"}]}).encode(), None, "Unknown output 'logits'"),
    (b'{"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 9}}]}'
     b"\x05\x00\x00\x00ab", "999", "Inference-Header-Content-Length"),
    # each of these was a 500 with a plain-text body (issue 33)
    (b'{"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "data": ["AA=="]}]}', "\u00b2",
     "Inference-Header-Content-Length"),  # a superscript two: isdigit, but not a number int() reads
    (json.dumps({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "data": ["AA=="],
                             "parameters": "binary"}]}).encode(), None, "The input's 'parameters' must be a JSON"),
    (json.dumps({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "data": ["AA=="]}],
                 "parameters": ["binary_data_output"]}).encode(), None, "The request's 'parameters' must be"),
    (json.dumps({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "data": ["AA=="]}],
                 "outputs": [{"name": "label", "parameters": "yes"}]}).encode(), None,
     "The 'label' output's 'parameters' must be"),
    (json.dumps({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [2 ** 62, 75, 75, 3],
                             "data": [1.0] * 16875}]}).encode(), None, "numbers, got 16875"),  # wrapped in int64
    (b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", None, "nested too deeply"),
])
def test_malformed_requests_are_one_sentence(body, length, message):
    with pytest.raises(protocols.ProtocolError, match=re.escape(message)) as caught:
        protocols.parse_infer(body, length, SIZE, scored=True)
    assert str(caught.value).endswith(".")


def test_a_cut_binary_bytes_tensor_is_refused():
    header = json.dumps({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1],
                                     "parameters": {"binary_data_size": 6}}]}).encode()
    with pytest.raises(protocols.ProtocolError, match="cut off inside an element"):
        protocols.parse_infer(header + b"\x09\x00\x00\x00ab", str(len(header)), SIZE, scored=True)


def test_tf_serving_requests_and_answers():
    b64 = base64.b64encode(b"jpeg").decode()
    assert protocols.parse_tf_serving(json.dumps({"instances": [{"b64": b64}]}).encode(), "predict") == [b"jpeg"]
    assert protocols.parse_tf_serving(json.dumps({"inputs": {"images": [{"b64": b64}]}}).encode(),
                                      "predict") == [b"jpeg"]
    assert protocols.parse_tf_serving(json.dumps({"examples": [{"images": {"b64": b64}}]}).encode(),
                                      "classify") == [b"jpeg"]
    with pytest.raises(protocols.ProtocolError, match='"b64"'):
        protocols.parse_tf_serving(json.dumps({"instances": ["raw"]}).encode(), "predict")
    predictions = protocols.tf_serving_predictions(_answers(2))
    assert predictions[1] == {"probabilities": pytest.approx([1 / 3] * 3), "label": "ant", "unknown": True,
                              "ood_score": 1.0}
    ranked = protocols.tf_serving_classes(["a", "b", "c"], np.array([[0.2, 0.5, 0.3]]))
    assert ranked == [[["b", 0.5], ["c", 0.3], ["a", 0.2]]]


def test_keys_come_from_the_flag_a_file_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("INCEPTUNE_API_KEY", raising=False)
    assert api_keys() == []
    monkeypatch.setenv("INCEPTUNE_API_KEY", "from-env")
    assert api_keys() == ["from-env"] and api_keys("given") == ["given"]
    keys = tmp_path / "keys.txt"
    keys.write_text("# team keys\nalpha\n\n beta \n")
    assert api_keys(api_key_file=str(keys)) == ["alpha", "beta"]
    keys.write_text("# nothing\n")
    with pytest.raises(UserError, match="holds no key"):
        api_keys(api_key_file=str(keys))
    check_exposure("127.0.0.1", [], no_auth=False)
    check_exposure("0.0.0.0", ["k"], no_auth=False)
    check_exposure("0.0.0.0", [], no_auth=True)
    with pytest.raises(UserError, match="--no-auth"):
        check_exposure("0.0.0.0", [], no_auth=False)


def test_a_run_is_served_under_the_name_its_triton_repository_uses():
    assert protocols.model_name("flowers") == "flowers"
    assert protocols.model_name("my run:2") == "my_run_2"
    assert protocols.model_name("...") == "model"
