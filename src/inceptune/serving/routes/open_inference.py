"""Open Inference Protocol (KServe v2, what Triton and KServe speak; requests and answers in deploy/protocols.py).

    GET  /v2, /v2/health/live, /v2/health/ready
    GET  /v2/models/{name}[/versions/1], /v2/models/{name}[/versions/1]/ready
    POST /v2/models/{name}[/versions/1]/infer
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from inceptune.deploy import protocols
from inceptune.serving.state import MODEL_VERSION, Serving, package_version


def routes(serving: Serving) -> APIRouter:
    router = APIRouter()
    model = serving.model

    @router.get("/v2")
    async def v2_server():
        """Open Inference Protocol: server metadata."""
        return {"name": "inceptune", "version": package_version(), "extensions": ["binary_tensor_data"]}

    @router.get("/v2/health/live")
    async def v2_live():
        return {"live": True}

    @router.get("/v2/health/ready")
    async def v2_ready():
        return {"ready": True}  # the model is loaded before the server listens

    @router.get("/v2/models/{model_name}")
    @router.get("/v2/models/{model_name}/versions/{version}")
    async def v2_metadata(model_name: str, version: str = MODEL_VERSION):
        """Open Inference Protocol: the model's inputs and outputs (names, datatypes, shapes)."""
        serving.known(model_name, version)
        return protocols.model_metadata(serving.name, MODEL_VERSION, model.image_size, serving.classes,
                                        serving.scored, serving.has_sets)

    @router.get("/v2/models/{model_name}/ready")
    @router.get("/v2/models/{model_name}/versions/{version}/ready")
    async def v2_model_ready(model_name: str, version: str = MODEL_VERSION):
        serving.known(model_name, version)
        return {"name": serving.name, "ready": True}

    @router.post("/v2/models/{model_name}/infer")
    @router.post("/v2/models/{model_name}/versions/{version}/infer")
    async def v2_infer(request: Request, model_name: str, version: str = MODEL_VERSION):
        """Open Inference Protocol inference: encoded images (BYTES) or pixels (FP32), JSON or binary data."""
        serving.known(model_name, version)
        body = await request.body()
        try:
            parsed = protocols.parse_infer(body, request.headers.get(protocols.HEADER_LENGTH), model.image_size,
                                           serving.scored, serving.has_sets)
        except protocols.ProtocolError as exc:
            raise HTTPException(400, str(exc)) from None
        if parsed.count > serving.max_files:
            raise HTTPException(413, f"At most {serving.max_files} images per request.")
        pixels = parsed.pixels if parsed.images is None else await serving.decoded(parsed.images)
        content, headers = protocols.infer_response(serving.name, MODEL_VERSION, parsed, await serving.answered(pixels))
        kind = "application/octet-stream" if headers else "application/json"
        return Response(content, media_type=kind, headers=headers)

    return router
