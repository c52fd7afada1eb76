"""`serve`: a run's classifier behind HTTP (FastAPI), with a small web page.

    POST /predict   multipart image file(s) -> JSON top-k per image
    POST /explain   one image -> the top class and a Grad-CAM overlay (PNG data URL)
    GET  /health    status, runtime and micro-batching counters
    GET  /labels    the class names
    GET  /          the web page (resources/index.html): drop an image, see bars
    GET  /docs      OpenAPI docs (/openapi.json)
    GET  /metrics   Prometheus metrics (deploy/metrics.py)
    Open Inference Protocol (KServe v2; deploy/protocols.py): GET /v2, /v2/health/live, /v2/health/ready,
    /v2/models/{name}[/versions/1], /v2/models/{name}/ready; POST /v2/models/{name}[/versions/1]/infer
    TF Serving REST: GET /v1/models/{name}; POST /v1/models/{name}:predict and :classify

With keys (deploy/keys.py) every route but health needs one; CORS is off unless origins are given.

Request flow: the body-size guard (before any byte is parsed) -> content-type
checks -> decode and resize on a worker thread, with the pixel-count limit
read from the header -> MicroBatcher, which gathers the images of concurrent
requests into one batch for the model -> JSON. Every refusal is a JSON body
`{"error": "..."}` with a 4xx status; the model runs on one dedicated thread.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from inceptune import hooks
from inceptune.data.images import decode_image
from inceptune.deploy import protocols
from inceptune.deploy.keys import LOOPBACK, KeyMiddleware, api_keys, check_exposure
from inceptune.deploy.metrics import METRICS_PATH, MetricsMiddleware, ServerMetrics
from inceptune.errors import ImageError, UserError
from inceptune.inference.model import load
from inceptune.inference.runtimes import DEFAULT_RUNTIME
from inceptune.vocabulary.limits import DEFAULT_MAX_PIXELS

DEFAULT_MAX_UPLOAD_BYTES = 20 * 2**20
DEFAULT_MAX_FILES = 16
IMAGE_TYPES = ("image/", "application/octet-stream")  # octet-stream: clients that do not guess types
MODEL_VERSION = "1"  # the protocols' model version: a run folder holds one model
DRAIN_SECONDS = 30  # SIGTERM or Ctrl-C: stop accepting, answer what is in flight for at most this long


class MicroBatcher:
    """Gathers the images of concurrent requests into batches of at most `max_batch` for one model thread.

    A batch starts with the first waiting request and takes whatever else
    arrives within `max_wait` seconds (or is queued while the model is busy).
    """

    def __init__(self, infer, max_batch: int = 16, max_wait: float = 0.005, on_batch=None):
        self.infer, self.max_batch, self.max_wait, self.on_batch = infer, max_batch, max_wait, on_batch
        self.model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inceptune-model")
        self.queue: asyncio.Queue | None = None
        self.batches = self.images = 0

    async def run(self) -> None:
        self.queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            count, deadline = len(items[0][0]), loop.time() + self.max_wait
            while count < self.max_batch:
                try:
                    item = await asyncio.wait_for(self.queue.get(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    break
                items.append(item)
                count += len(item[0])
            batch = np.concatenate([images for images, _ in items])
            hooks.reached("batch_started", images=len(batch))
            try:
                probs = await loop.run_in_executor(self.model_thread, self.infer, batch)
            except Exception as exc:  # the requests fail, the server stays up
                for _, future in items:
                    future.set_exception(exc)
                continue
            self.batches, self.images = self.batches + 1, self.images + len(batch)
            if self.on_batch is not None:
                self.on_batch(len(batch))
            start = 0
            for images, future in items:
                future.set_result(probs[start:start + len(images)])
                start += len(images)

    async def submit(self, images: np.ndarray) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((images, future))
        return await future

    async def call(self, fn, *args):
        """Run `fn` on the model thread (models are not shared across threads)."""
        return await asyncio.get_running_loop().run_in_executor(self.model_thread, fn, *args)


class BodyLimit:
    """ASGI middleware: 413 for request bodies over `max_bytes`, by Content-Length or as they stream in."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.max_bytes:
            return await _send_json(send, 413, self._message())
        seen, started = 0, False

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge()
            return message

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if not started:
                await _send_json(send, 413, self._message())

    def _message(self) -> str:
        return f"The request body is over the limit of {self.max_bytes / 2**20:g} MiB."


class _TooLarge(Exception):
    pass


async def _send_json(send, status: int, error: str) -> None:
    import json

    body = json.dumps({"error": error}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app(run: str, runtime: str = DEFAULT_RUNTIME, top: int = 5, max_batch: int = 16,
               max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS,
               max_files: int = DEFAULT_MAX_FILES, unsafe: bool = False, keys: list[str] | None = None,
               cors: list[str] | None = None, model_name: str | None = None):
    """The FastAPI app serving a run folder's model (see the module docstring for the routes).

    `keys`: the API keys every route but health requires (none: open); `cors`: the origins browsers may call
    it from (none: CORS off); `model_name`: its name in the v1/v2 routes (default: the run folder's name, cleaned
    as `export --format triton` cleans it).
    """
    model = load(run, runtime=runtime, unsafe=unsafe)
    classes = model.classes
    name = model_name or protocols.model_name(model.folder.path.name)
    scored = model.ood_threshold is not None
    metrics = ServerMetrics()
    batcher = MicroBatcher(model.infer_scored, max_batch=max_batch,  # rows: probabilities, then the OOD score
                           on_batch=metrics.batch_done)
    metrics.queue.set_function(lambda: batcher.queue.qsize() if batcher.queue is not None else 0)
    counters = {"requests": 0, "started": time.time()}

    @asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()
        batcher.model_thread.shutdown(wait=False)

    app = FastAPI(title="inceptune", version=_version(), lifespan=lifespan,
                  description=f"Image classifier of the run {model.folder.path.name}: {', '.join(classes)}.")
    app.add_middleware(BodyLimit, max_bytes=max_upload_bytes)
    if keys:
        app.add_middleware(KeyMiddleware, keys=keys)
    if cors:
        app.add_middleware(CORSMiddleware, allow_origins=cors, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type",
                                          "Inference-Header-Content-Length"])
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=app.router.routes)  # outermost: refusals count

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"error": f"Invalid request: {where} {first.get('msg', '')}".strip() + "."},
                            status_code=422)

    async def read_images(request: Request, limit: int, prepare) -> list[tuple[str, np.ndarray]]:
        """(file name, prepare(its decoded pixels)) per uploaded image, each prepared as soon as it is decoded."""
        kind = request.headers.get("content-type", "")
        if not kind.startswith("multipart/form-data"):
            raise HTTPException(415, f"Send the images as multipart/form-data (field 'file'), not '{kind or 'nothing'}'.")
        try:
            form = await request.form(max_files=limit, max_fields=limit)
        except _TooLarge:
            raise
        except Exception as exc:
            raise HTTPException(400, f"The multipart body could not be parsed ({exc}).") from None
        uploads = [v for _, v in form.multi_items() if hasattr(v, "filename") and v.filename is not None]
        if not uploads:
            raise HTTPException(400, "The request has no image file; send one in a multipart field named 'file'.")
        if len(uploads) > limit:
            raise HTTPException(413, f"At most {limit} images per request.")
        images = []
        for upload in uploads:
            name, kind = upload.filename or "upload", upload.content_type or ""
            if not kind.startswith(IMAGE_TYPES):
                raise HTTPException(415, f"{name} is '{kind}', not an image.")
            data = await upload.read()
            try:
                images.append((name, await run_in_threadpool(lambda: prepare(_decode(data, max_pixels)))))
            except ImageError as exc:
                raise HTTPException(413 if exc.reason.startswith("too large") else 400,
                                    f"{name} cannot be used: {exc.reason}.") from None
        return images

    def at_model_size(image: np.ndarray) -> np.ndarray:
        """Resized at once: a request holds its images at the model's size, not as decoded (up to --max-pixels)."""
        return model.batch([image])[0]

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return resources.files("inceptune.resources").joinpath("index.html").read_text()

    @app.get("/health")
    async def health():
        """Liveness, the model being served, and micro-batching counters."""
        return {"status": "ok", "run": model.folder.path.name, "runtime": model.runtime,
                "classes": len(classes), "image_size": model.image_size, "explain": model.explainable,
                "requests": counters["requests"], "batches": batcher.batches, "images": batcher.images,
                "uptime_s": round(time.time() - counters["started"], 1)}

    @app.get("/labels")
    async def labels():
        """The class names, in the model's output order."""
        return {"classes": classes}

    multipart = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}}}}

    @app.post("/predict", openapi_extra=multipart)
    async def predict(request: Request, top_k: int | None = None):
        """Top-k classes for one or several images (multipart field `file`, repeatable)."""
        top_k = min(top, len(classes)) if top_k is None else top_k
        if not 1 <= top_k <= len(classes):
            raise HTTPException(400, f"top_k must be between 1 and {len(classes)}.")
        images = await read_images(request, max_files, at_model_size)
        counters["requests"] += 1
        probs = await batcher.submit(np.stack([image for _, image in images]))
        results = []
        for (name, _), p in zip(images, probs):
            found = model.describe(p, top_k)
            results.append({"filename": name, **{k: v for k, v in found.items() if k != "probabilities"}})
        return {"runtime": model.runtime, "predictions": results}

    async def decoded(blobs: list[bytes]) -> np.ndarray:
        """Encoded image files -> one batch at the model's size; a file that cannot be used is a 4xx."""
        if len(blobs) > max_files:
            raise HTTPException(413, f"At most {max_files} images per request.")
        images = []
        for i, data in enumerate(blobs):
            try:
                images.append(await run_in_threadpool(lambda: at_model_size(_decode(data, max_pixels))))
            except ImageError as exc:
                raise HTTPException(413 if exc.reason.startswith("too large") else 400,
                                    f"Image {i} cannot be used: {exc.reason}.") from None
        return np.stack(images)

    async def answered(pixels: np.ndarray) -> dict[str, np.ndarray]:
        """The protocols' outputs of a batch of pixels at the model's size."""
        counters["requests"] += 1
        rows = await batcher.submit(pixels)
        described = [model.describe(row, 1) for row in rows]
        labels = ["|".join(d["labels"]) if "labels" in d else d["top"][0]["label"] for d in described]
        outputs = {protocols.PROBABILITIES: np.asarray(rows[:, :-1], np.float32),
                   protocols.LABEL: np.array([label.encode() for label in labels], dtype=object)}
        if scored:
            outputs[protocols.UNKNOWN] = np.array([bool(d.get("unknown")) for d in described])
            outputs[protocols.OOD_SCORE] = np.asarray(rows[:, -1], np.float32)
        return outputs

    def known(model_name: str, version: str = MODEL_VERSION) -> None:
        if model_name != name or version != MODEL_VERSION:
            raise HTTPException(404, f"Unknown model '{model_name}' version '{version}'; this server serves "
                                     f"'{name}' version {MODEL_VERSION}.")

    @app.get(METRICS_PATH, include_in_schema=False)
    async def prometheus():
        body, kind = metrics.exposition()
        return Response(body, media_type=kind)

    @app.get("/v2")
    async def v2_server():
        """Open Inference Protocol: server metadata."""
        return {"name": "inceptune", "version": _version(), "extensions": ["binary_tensor_data"]}

    @app.get("/v2/health/live")
    async def v2_live():
        return {"live": True}

    @app.get("/v2/health/ready")
    async def v2_ready():
        return {"ready": True}  # the model is loaded before the server listens

    @app.get("/v2/models/{model_name}")
    @app.get("/v2/models/{model_name}/versions/{version}")
    async def v2_metadata(model_name: str, version: str = MODEL_VERSION):
        """Open Inference Protocol: the model's inputs and outputs (names, datatypes, shapes)."""
        known(model_name, version)
        return protocols.model_metadata(name, MODEL_VERSION, model.image_size, classes, scored)

    @app.get("/v2/models/{model_name}/ready")
    @app.get("/v2/models/{model_name}/versions/{version}/ready")
    async def v2_model_ready(model_name: str, version: str = MODEL_VERSION):
        known(model_name, version)
        return {"name": name, "ready": True}

    @app.post("/v2/models/{model_name}/infer")
    @app.post("/v2/models/{model_name}/versions/{version}/infer")
    async def v2_infer(request: Request, model_name: str, version: str = MODEL_VERSION):
        """Open Inference Protocol inference: encoded images (BYTES) or pixels (FP32), JSON or binary data."""
        known(model_name, version)
        body = await request.body()
        try:
            parsed = protocols.parse_infer(body, request.headers.get(protocols.HEADER_LENGTH), model.image_size,
                                           scored)
        except protocols.ProtocolError as exc:
            raise HTTPException(400, str(exc)) from None
        if parsed.count > max_files:
            raise HTTPException(413, f"At most {max_files} images per request.")
        pixels = parsed.pixels if parsed.images is None else await decoded(parsed.images)
        content, headers = protocols.infer_response(name, MODEL_VERSION, parsed, await answered(pixels))
        kind = "application/octet-stream" if headers else "application/json"
        return Response(content, media_type=kind, headers=headers)

    @app.get("/v1/models/{model_name}")
    async def tf_status(model_name: str):
        """TF Serving REST: the model's version status."""
        known(model_name)
        return {"model_version_status": [{"version": MODEL_VERSION, "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}

    @app.post("/v1/models/{target}")
    async def tf_serving(request: Request, target: str):
        """TF Serving REST: `NAME:predict` ({"instances": [{"b64": ...}]}) and `NAME:classify` ({"examples": ...})."""
        model_name, _, verb = target.rpartition(":")
        if verb not in ("predict", "classify"):
            raise HTTPException(404, f"Use /v1/models/{name}:predict or :classify.")
        known(model_name)
        try:
            blobs = protocols.parse_tf_serving(await request.body(), verb)
        except protocols.ProtocolError as exc:
            raise HTTPException(400, str(exc)) from None
        outputs = await answered(await decoded(blobs))
        if verb == "classify":
            return {"results": protocols.tf_serving_classes(classes, outputs[protocols.PROBABILITIES])}
        return {"predictions": protocols.tf_serving_predictions(outputs)}

    @app.post("/explain", openapi_extra=multipart)
    async def explain(request: Request):
        """The top class of one image and a Grad-CAM overlay of where the model looked (PNG data URL)."""
        if not model.explainable:
            raise HTTPException(404, "Grad-CAM is not available for this model (it has no pretrained Inception base).")
        (name, image), *_ = await read_images(request, 1, lambda image: image)
        answer = await batcher.call(model.explain, image)  # Keras is loaded on the first explanation
        overlay = await run_in_threadpool(_overlay_png, image, answer["heatmap"])
        return {"filename": name, "label": answer["class"], "probability": answer["probability"],
                "overlay": "data:image/png;base64," + base64.b64encode(overlay).decode()}

    return app


def _decode(data: bytes, max_pixels: int) -> np.ndarray:
    return decode_image(data, max_pixels=max_pixels)


def _overlay_png(image: np.ndarray, heatmap: np.ndarray, longest: int = 512) -> bytes:
    """The image with the heatmap blended on top (jet colours), at most `longest` pixels wide or high."""
    from matplotlib import colormaps
    from PIL import Image

    colours = colormaps["jet"](heatmap)[..., :3] * 255
    blended = (0.55 * image.astype("float32") + 0.45 * colours).clip(0, 255).astype("uint8")
    picture = Image.fromarray(blended)
    picture.thumbnail((longest, longest))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("inceptune")
    except PackageNotFoundError:
        return "dev"


def serve(run: str, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          api_key_file: str | None = None, no_auth: bool = False, **settings) -> None:
    """Serve a run until interrupted (see `create_app` for the settings). Beyond loopback a key is required
    unless `no_auth`; SIGTERM or Ctrl-C stops accepting and answers what is in flight first."""
    import socket

    import uvicorn

    from inceptune import console

    keys = api_keys(api_key, api_key_file)
    check_exposure(host, keys, no_auth)
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise UserError(f"Cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port.") from None
    app = create_app(run, keys=keys, **settings)
    if host not in LOOPBACK and not keys:
        console.warn(f"listening on {host} with --no-auth: anyone who can reach this machine can use the model")
    console.info(f"Serving {run} on http://{host}:{port}/ (API docs at /docs{', key required' if keys else ''}); "
                 "Ctrl-C stops.")
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=DRAIN_SECONDS)
