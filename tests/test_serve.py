"""`inceptune serve`: a live server on localhost, its limits, a load test, and its web page in Chromium."""

import io

import httpx
import pytest
from PIL import Image

import inceptune
from conftest import SERVING, headless_chromium, one_sentence_error, png_size, requires_shared, run_cli
from corpus import png_bomb
from inceptune.deploy.loadtest import free_port, load_test, serving

pytestmark = [requires_shared, SERVING]


@pytest.fixture(scope="module")
def server(flowers_run):
    with serving(flowers_run.run, "--max-upload-mb", "2", "--top", "3") as (url, process):
        yield url, process


@pytest.fixture(scope="module")
def images(small_flowers):
    return sorted(small_flowers.rglob("*.jpg"))


def test_health_labels_and_openapi(server):
    url, _ = server
    health = httpx.get(f"{url}/health").json()
    assert health["status"] == "ok" and health["classes"] == 5 and health["runtime"] == "keras"
    assert health["explain"] is True
    assert httpx.get(f"{url}/labels").json() == {"classes": ["daisy", "dandelion", "roses", "sunflowers", "tulips"]}
    schema = httpx.get(f"{url}/openapi.json").json()
    assert "multipart/form-data" in schema["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert {"/health", "/labels", "/predict", "/explain"} <= set(schema["paths"])


def test_predictions_over_http_equal_the_python_api(server, flowers_run, images):
    url, _ = server
    chosen = images[::12]
    files = [("file", (p.name, p.read_bytes(), "image/jpeg")) for p in chosen]
    answer = httpx.post(f"{url}/predict", files=files, params={"top_k": 5}, timeout=60).json()
    expected = inceptune.predict(str(flowers_run.run), [str(p) for p in chosen], top=5)
    assert [p["filename"] for p in answer["predictions"]] == [p.name for p in chosen]
    for got, want in zip(answer["predictions"], expected):
        assert [t["label"] for t in got["top"]][0] == want["top"][0]["label"]
        for t in got["top"]:
            assert abs(t["probability"] - want["probabilities"][t["label"]]) < 1e-5
        assert got["unknown"] == want["unknown"] and abs(got["ood_score"] - want["ood_score"]) < 1e-5
    default = httpx.post(f"{url}/predict", files=files[:1], timeout=60).json()
    assert len(default["predictions"][0]["top"]) == 3  # serve --top 3


def _png(width=40, height=30) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_malformed_requests_get_4xx_json_errors_and_the_server_stays_up(server, images):
    url, process = server
    jpeg = images[0].read_bytes()
    cases = {
        "no file": (400, {"files": {"note": (None, "hello")}}),
        "no body at all": (415, {}),
        "a text file": (415, {"files": {"file": ("notes.txt", b"just words", "text/plain")}}),
        "text claimed as PNG": (400, {"files": {"file": ("fake.png", b"just words", "image/png")}}),
        "a truncated JPEG": (400, {"files": {"file": ("cut.jpg", jpeg[: len(jpeg) // 3], "image/jpeg")}}),
        "a 120-megapixel PNG": (413, {"files": {"file": ("huge.png", png_bomb(12000, 10000), "image/png")}}),
        "a wrong content type": (415, {"content": jpeg, "headers": {"content-type": "image/jpeg"}}),
        "an oversized body": (413, {"files": {"file": ("big.png", b"\0" * (3 * 2**20), "image/png")}}),
        "a bad top_k": (400, {"files": {"file": ("ok.png", _png(), "image/png")}, "params": {"top_k": 99}}),
    }
    for name, (status, request) in cases.items():
        response = httpx.post(f"{url}/predict", timeout=60, **request)
        assert response.status_code == status, (name, response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/json"), name
        assert response.json()["error"].endswith("."), name
    assert httpx.get(f"{url}/nowhere").json() == {"error": "Not Found"}
    ok = httpx.post(f"{url}/predict", files={"file": ("ok.png", _png(), "image/png")}, timeout=60)
    assert ok.status_code == 200 and process.poll() is None


def test_load_of_200_requests_from_8_clients_has_no_errors_and_is_micro_batched(server, images):
    url, _ = server
    before = httpx.get(f"{url}/health").json()
    result = load_test(url, images[:20], requests=200, clients=8)
    after = httpx.get(f"{url}/health").json()
    print(f"\nload test: {result['requests']} requests, {result['clients']} clients, p50 {result['p50_ms']:.0f} ms, "
          f"p95 {result['p95_ms']:.0f} ms, {result['requests_per_s']} requests/s, errors {result['errors']}")
    assert result["errors"] == 0, result["error_statuses"]
    assert after["images"] - before["images"] == 200
    assert after["batches"] - before["batches"] < 200  # concurrent requests shared batches
    assert 0 < result["p50_ms"] <= result["p95_ms"]


def test_the_web_page_classifies_a_chosen_image_in_headless_chromium(server, images, tmp_path):
    url, _ = server
    image = images[-1]
    expected = httpx.post(f"{url}/predict", files={"file": (image.name, image.read_bytes(), "image/jpeg")},
                          timeout=60).json()["predictions"][0]["top"][0]["label"]
    with headless_chromium() as browser:
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        page.goto(url)
        page.wait_for_selector("#model:has-text('5 classes')")
        page.set_input_files("#file", str(image))
        page.wait_for_selector("#results .row")
        shown = page.locator("#results .row .label").first.inner_text()
        bars = page.locator("#results .row").count()
        page.wait_for_selector("#cam:not([hidden])")
        overlay_width = page.evaluate("document.getElementById('overlay').naturalWidth")
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert shown == expected and bars == 3
    assert overlay_width > 100  # the Grad-CAM overlay decoded
    assert png_size(tmp_path / "page.png")[0] == 1000


def test_the_web_page_says_none_of_these_for_a_photo_unlike_the_training_photos(server, images, tmp_path):
    url, _ = server
    odd, flower = tmp_path / "odd.png", images[0]
    odd.write_bytes(_png(300, 200))  # one flat green: nothing like a flower photo
    answers = httpx.post(f"{url}/predict", files=[("file", ("odd.png", odd.read_bytes(), "image/png")),
                                                   ("file", (flower.name, flower.read_bytes(), "image/jpeg"))],
                         timeout=60).json()["predictions"]
    assert answers[0]["unknown"] is True and answers[0]["ood_score"] > answers[1]["ood_score"]
    shown, sets = {}, {}
    with headless_chromium() as browser:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#model:has-text('5 classes')")
        for image in (odd, flower):
            page.set_input_files("#file", str(image))
            page.wait_for_selector(f"#name:has-text('{image.name}')")
            page.wait_for_selector("#results .row")
            banner, told = page.locator("#unknown"), page.locator("#set")
            shown[image] = banner.inner_text() if banner.is_visible() else None
            sets[image] = told.inner_text() if told.is_visible() else None
    assert shown[odd].startswith("None of these") and sets[odd] is None
    assert (shown[flower] is not None) == answers[1]["unknown"]  # shown exactly when the API says unknown
    if not answers[1]["unknown"]:  # "roses or tulips": the API's prediction set, most probable first
        assert sets[flower] == "Prediction set: " + " or ".join(answers[1]["set"])


def test_serve_refuses_a_missing_run_and_a_busy_port_in_one_sentence(server, tmp_path):
    url, _ = server
    busy = url.rsplit(":", 1)[1]
    assert "Cannot listen on 127.0.0.1:" in one_sentence_error(run_cli("serve", str(tmp_path), "--port", busy))
    message = one_sentence_error(run_cli("serve", str(tmp_path / "missing"), "--port", str(free_port())))
    assert "missing" in message


def test_serve_decodes_at_most_a_few_uploaded_images_at_once(flowers_run):
    """Many large photos at once queue for a decoding slot (vocabulary/limits.py's DECODE_SLOTS) instead of each
    holding its full-size pixels: the server's memory stays bounded whatever the clients send (issue 33)."""
    import asyncio

    import numpy as np

    from inceptune import hooks
    from inceptune.serving.state import Serving
    from inceptune.vocabulary.limits import DECODE_SLOTS

    model = inceptune.load(str(flowers_run.run), runtime="keras")
    serving = Serving(model, "flowers", batcher=None, metrics=None, top=3, max_files=4, max_pixels=10 ** 8)
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (1200, 1600, 3), np.uint8)).save(buffer, "PNG")
    photo = buffer.getvalue()

    async def clients():  # eight requests at once, as eight clients would send them
        return await asyncio.gather(*(serving.decoded([photo]) for _ in range(8)))

    active = []
    with hooks.listen("image_decoding", lambda event: active.append(event["active"])):
        batches = asyncio.run(clients())
    assert len(active) == 8 and max(active) == DECODE_SLOTS  # every slot used, never more
    assert serving.decoding == 0 and all(b.shape == (1, model.image_size, model.image_size, 3) for b in batches)
