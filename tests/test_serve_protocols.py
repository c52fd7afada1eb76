"""A live `serve` with a key, driven by the real tritonclient, TF Serving requests, Prometheus' parser and a soak."""

import base64

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import SERVING, one_sentence_error, requires_shared, run_cli
from inceptune.data.images import load_image
from inceptune.data.pipeline import resize_image
from inceptune.deploy.loadtest import free_port, serving, soak_test

http = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is not installed")
pytestmark = [requires_shared, SERVING]

KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def server(flowers_run):
    with serving(flowers_run.run, "--api-key", KEY, "--top", "5", "--model-name", "flowers") as (url, process):
        yield url, process


@pytest.fixture(scope="module")
def images(small_flowers):
    return sorted(small_flowers.rglob("*.jpg"))[::6]


def _predict(url, paths) -> list[dict]:
    files = [("file", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]
    return httpx.post(f"{url}/predict", files=files, headers=AUTH, timeout=60).json()["predictions"]


def _client(url):
    return http.InferenceServerClient(url.removeprefix("http://"), network_timeout=120)


def test_tritonclient_binary_jpeg_bytes_answer_as_predict_does(server, images):
    url, _ = server
    chosen = images[:4]
    expected = _predict(url, chosen)
    client = _client(url)
    assert client.is_server_live() and client.is_model_ready("flowers", headers=dict(AUTH))
    metadata = client.get_model_metadata("flowers", headers=dict(AUTH))
    assert {o["name"] for o in metadata["outputs"]} == {"probabilities", "label", "unknown", "ood_score", "set"}
    assert metadata["inputs"][1] == {"name": "pixels", "datatype": "FP32", "shape": [-1, 150, 150, 3]}
    tensor = http.InferInput("images", [len(chosen)], "BYTES")
    tensor.set_data_from_numpy(np.array([p.read_bytes() for p in chosen], dtype=object), binary_data=True)
    result = client.infer("flowers", [tensor], headers=dict(AUTH))  # binary answers: tritonclient's default
    probabilities, labels = result.as_numpy("probabilities"), result.as_numpy("label")
    classes = metadata["parameters"]["classes"]
    for row, label, unknown, score, want in zip(probabilities, labels, result.as_numpy("unknown"),
                                                result.as_numpy("ood_score"), expected):
        assert label.decode() == want["top"][0]["label"] == classes[int(np.argmax(row))]
        for entry in want["top"]:
            assert abs(float(row[classes.index(entry["label"])]) - entry["probability"]) <= 1e-6
        assert bool(unknown) == want["unknown"] and abs(float(score) - want["ood_score"]) <= 1e-6
    # the prediction set, as POST /predict gives it: its classes joined by "|"
    assert [s.decode().split("|") for s in result.as_numpy("set")] == [want["set"] for want in expected]

    # The FP32 pixels input, resized as the server resizes: the same answers.
    pixels = np.stack([resize_image(load_image(str(p)), 150) for p in chosen]).astype(np.float32)
    tensor = http.InferInput("pixels", list(pixels.shape), "FP32")
    tensor.set_data_from_numpy(pixels, binary_data=True)
    answer = client.infer("flowers", [tensor], outputs=[http.InferRequestedOutput("probabilities")],
                          headers=dict(AUTH))
    np.testing.assert_allclose(answer.as_numpy("probabilities"), probabilities, atol=1e-6)


def test_tf_serving_b64_predict_and_classify_answer_as_predict_does(server, images):
    url, _ = server
    chosen = images[4:7]
    expected = _predict(url, chosen)
    instances = [{"b64": base64.b64encode(p.read_bytes()).decode()} for p in chosen]
    predictions = httpx.post(f"{url}/v1/models/flowers:predict", json={"instances": instances}, headers=AUTH,
                             timeout=60).json()["predictions"]
    results = httpx.post(f"{url}/v1/models/flowers:classify", json={"examples": [{"images": i} for i in instances]},
                         headers=AUTH, timeout=60).json()["results"]
    classes = httpx.get(f"{url}/labels", headers=AUTH).json()["classes"]
    for prediction, ranked, want in zip(predictions, results, expected):
        assert prediction["label"] == ranked[0][0] == want["top"][0]["label"]
        assert prediction["set"].split("|") == want["set"]
        for entry in want["top"]:
            assert abs(prediction["probabilities"][classes.index(entry["label"])] - entry["probability"]) <= 1e-6
        assert [label for label, _ in ranked[:5]] == [t["label"] for t in want["top"]]
    status = httpx.get(f"{url}/v1/models/flowers", headers=AUTH).json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"


def _requests_total(url) -> dict[tuple, float]:
    text = httpx.get(f"{url}/metrics", headers=AUTH).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {"inceptune_request_seconds", "inceptune_batch_images", "inceptune_images", "inceptune_queue_depth"} \
        <= set(families)
    return {(s.labels["route"], s.labels["method"], s.labels["status"]): s.value
            for s in families["inceptune_requests"].samples if s.name == "inceptune_requests_total"}


def test_metrics_parse_and_count_exactly_the_requests_sent(server, images):
    url, _ = server
    before = _requests_total(url)
    files = {"file": (images[0].name, images[0].read_bytes(), "image/jpeg")}
    for _ in range(3):
        assert httpx.post(f"{url}/predict", files=files, headers=AUTH, timeout=60).status_code == 200
    assert httpx.post(f"{url}/predict", files=files, timeout=60).status_code == 401
    assert httpx.post(f"{url}/v2/models/flowers/infer", content=b"{", headers=AUTH).status_code == 400
    for _ in range(2):
        assert httpx.get(f"{url}/v2/health/ready").status_code == 200
    after = _requests_total(url)
    sent = {("/predict", "POST", "200"): 3, ("/predict", "POST", "401"): 1,
            ("/v2/models/{model_name}/infer", "POST", "400"): 1, ("/v2/health/ready", "GET", "200"): 2}
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}
    assert {k: v for k, v in delta.items() if v} == sent  # /metrics itself is not counted


def test_keys_guard_every_route_but_health(server, images):
    url, _ = server
    files = {"file": (images[0].name, images[0].read_bytes(), "image/jpeg")}
    for method, path, kwargs in [("POST", "/predict", {"files": files}),
                                 ("POST", "/v2/models/flowers/infer", {"json": {"inputs": []}}),
                                 ("GET", "/v2/models/flowers", {}), ("POST", "/v1/models/flowers:predict", {"json": {}}),
                                 ("GET", "/metrics", {}), ("GET", "/openapi.json", {})]:
        for headers in ({}, {"Authorization": "Bearer wrong-key"}, {"X-API-Key": KEY[:-1]}):
            response = httpx.request(method, f"{url}{path}", headers=headers, timeout=60, **kwargs)
            assert response.status_code == 401, (path, headers)
            assert response.json()["error"].startswith("A valid API key is required")
    for path in ("/health", "/v2/health/live", "/v2/health/ready"):
        assert httpx.get(f"{url}{path}").status_code == 200
    assert httpx.post(f"{url}/predict", files=files, headers={"X-API-Key": KEY}, timeout=60).status_code == 200


def test_serving_beyond_loopback_without_a_key_refuses_in_one_sentence(flowers_run, tmp_path, monkeypatch):
    monkeypatch.delenv("INCEPTUNE_API_KEY", raising=False)
    result = run_cli("serve", str(flowers_run.run), "--host", "0.0.0.0", "--port", str(free_port()))
    assert result.returncode == 2
    assert "--no-auth" in one_sentence_error(result)
    empty = tmp_path / "keys.txt"
    empty.write_text("\n")
    result = run_cli("serve", str(flowers_run.run), "--api-key-file", str(empty), "--port", str(free_port()))
    assert result.returncode == 2 and "holds no key" in one_sentence_error(result)


@pytest.mark.parametrize("requests", [pytest.param(400, id="ci"),
                                      pytest.param(2000, marks=pytest.mark.slow, id="full")])  # ~60 s on 2 cores
def test_soak_from_16_clients_with_5_percent_malformed(server, images, requests):
    url, process = server
    expected = [p["top"][0]["label"] for p in _predict(url, images)]
    result = soak_test(url, process, images, expected, "flowers", requests=requests, clients=16, bad_every=20,
                       headers=AUTH)
    print(f"\nsoak: {result['requests']} requests ({result['malformed']} malformed) from {result['clients']} clients "
          f"in {result['seconds']} s; p50 {result['p50_ms']:.0f} ms, p95 {result['p95_ms']:.0f} ms; statuses "
          f"{result['statuses']}; RSS {result['rss_after_warmup'] / 2**20:.0f} -> {result['rss_end'] / 2**20:.0f} MiB")
    assert result["requests"] == requests and result["malformed"] == requests // 20
    assert result["server_errors"] == 0 and result["wrong"] == 0, result["statuses"]
    # a leak grows the server; it may also shrink, when the kernel reclaims its pages while other tests need memory
    assert result["rss_growth"] <= 0.10
    assert 0 < result["p50_ms"] <= result["p95_ms"]


def test_sigterm_answers_the_request_in_flight_before_exiting(flowers_run, images):
    # The server sends itself SIGTERM the moment the model thread is given this request's image.
    with serving(flowers_run.run, "--api-key", KEY, env={"INCEPTUNE_SIGNAL_AT": "batch_started:1:TERM"}) as (url, process):
        files = {"file": (images[0].name, images[0].read_bytes(), "image/jpeg")}
        response = httpx.post(f"{url}/predict", files=files, headers=AUTH, timeout=120)
        assert response.status_code == 200 and response.json()["predictions"][0]["top"]
        code = process.wait(timeout=60)
        with pytest.raises(httpx.TransportError):  # it stopped accepting
            httpx.get(f"{url}/health", timeout=5)
    assert code == 130  # every interrupted inceptune command exits 130, after the drain
