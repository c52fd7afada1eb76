"""`serve`: a run's classifier behind HTTP (FastAPI), with a small web page.

create_app loads the run once into the state every route shares (serving/state.py) and includes one
router per protocol (serving/routes/):

    own_api.py         POST /predict, POST /explain, GET /health, GET /labels
    open_inference.py  Open Inference Protocol (KServe v2; deploy/protocols.py): GET /v2, /v2/health/live,
                       /v2/health/ready, /v2/models/{name}[/versions/1], /v2/models/{name}/ready;
                       POST /v2/models/{name}[/versions/1]/infer
    tf_serving.py      TF Serving REST: GET /v1/models/{name}; POST /v1/models/{name}:predict and :classify
    prometheus.py      GET /metrics: Prometheus metrics (serving/metrics.py)
    page.py            GET /: the web page (resources/index.html): drop an image, see bars
    and FastAPI's own  GET /docs: OpenAPI docs (/openapi.json)

With keys (serving/keys.py) every route but health needs one; CORS is off unless origins are given.

Request flow: the body-size guard (before any byte is parsed) -> content-type
checks -> decode and resize on a worker thread, with the pixel-count limit
read from the header -> MicroBatcher, which gathers the images of concurrent
requests into one batch for the model -> JSON. Every refusal is a JSON body
`{"error": "..."}` with a 4xx status; the model runs on one dedicated thread.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from inceptune.deploy import protocols
from inceptune.errors import UserError
from inceptune.inference.model import load
from inceptune.inference.runtimes import DEFAULT_RUNTIME
from inceptune.serving.batching import MicroBatcher
from inceptune.serving.body_limit import BodyLimit
from inceptune.serving.keys import LOOPBACK, KeyMiddleware, api_keys, check_exposure
from inceptune.serving.metrics import MetricsMiddleware, ServerMetrics
from inceptune.serving.routes import open_inference, own_api, page, prometheus, tf_serving
from inceptune.serving.state import Serving, package_version
from inceptune.vocabulary.limits import DEFAULT_MAX_PIXELS

DEFAULT_MAX_UPLOAD_BYTES = 20 * 2**20
DEFAULT_MAX_FILES = 16
DRAIN_SECONDS = 30  # SIGTERM or Ctrl-C: stop accepting, answer what is in flight for at most this long
ROUTES = (page, own_api, prometheus, open_inference, tf_serving)


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
    metrics = ServerMetrics()
    batcher = MicroBatcher(model.infer_scored, max_batch=max_batch,  # rows: probabilities, then the OOD score
                           on_batch=metrics.batch_done)
    metrics.queue.set_function(lambda: batcher.queue.qsize() if batcher.queue is not None else 0)
    serving = Serving(model, model_name or protocols.model_name(model.folder.path.name), batcher, metrics,
                      top=top, max_files=max_files, max_pixels=max_pixels)

    @asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()
        batcher.model_thread.shutdown(wait=False)

    app = FastAPI(title="inceptune", version=package_version(), lifespan=lifespan,
                  description=f"Image classifier of the run {model.folder.path.name}: {', '.join(model.classes)}.")
    app.add_middleware(BodyLimit, max_bytes=max_upload_bytes)
    if keys:
        app.add_middleware(KeyMiddleware, keys=keys)
    if cors:
        app.add_middleware(CORSMiddleware, allow_origins=cors, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type",
                                          "Inference-Header-Content-Length"])
    routers = [module.routes(serving) for module in ROUTES]
    # Outermost, so refusals count. It names a request refused before routing (a 401, a 413) by the route it
    # would have reached: the routes themselves, as newer FastAPI keeps an included router as one pathless route.
    app.add_middleware(MetricsMiddleware, metrics=metrics,
                       routes=[*app.router.routes, *(route for router in routers for route in router.routes)])
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for router in routers:
        app.include_router(router)
    return app


async def _http_error(request, exc):
    return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)


async def _validation_error(request, exc):
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return JSONResponse({"error": f"Invalid request: {where} {first.get('msg', '')}".strip() + "."}, status_code=422)


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
