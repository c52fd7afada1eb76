"""inceptune's own JSON API: multipart image files in, JSON out.

    GET  /health    status, runtime and micro-batching counters
    GET  /labels    the class names
    POST /predict   multipart image file(s) -> JSON top-k per image
    POST /explain   one image -> the top class and a Grad-CAM overlay (PNG data URL)
"""

from __future__ import annotations

import base64
import io
import time

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from inceptune.errors import ImageError
from inceptune.serving.body_limit import TooLarge
from inceptune.serving.state import Serving, unusable

IMAGE_TYPES = ("image/", "application/octet-stream")  # octet-stream: clients that do not guess types
MULTIPART = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}}}}


def routes(serving: Serving) -> APIRouter:
    router = APIRouter()
    model, classes = serving.model, serving.classes

    @router.get("/health")
    async def health():
        """Liveness, the model being served, and micro-batching counters."""
        return {"status": "ok", "run": model.folder.path.name, "runtime": model.runtime,
                "classes": len(classes), "image_size": model.image_size, "explain": model.explainable,
                "requests": serving.requests, "batches": serving.batcher.batches, "images": serving.batcher.images,
                "uptime_s": round(time.time() - serving.started, 1)}

    @router.get("/labels")
    async def labels():
        """The class names, in the model's output order."""
        return {"classes": classes}

    @router.post("/predict", openapi_extra=MULTIPART)
    async def predict(request: Request, top_k: int | None = None):
        """Top-k classes for one or several images (multipart field `file`, repeatable)."""
        top_k = min(serving.top, len(classes)) if top_k is None else top_k
        if not 1 <= top_k <= len(classes):
            raise HTTPException(400, f"top_k must be between 1 and {len(classes)}.")
        images = await read_images(serving, request, serving.max_files, serving.at_model_size)
        serving.requests += 1
        probs = await serving.batcher.submit(np.stack([image for _, image in images]))
        results = []
        for (name, _), p in zip(images, probs):
            found = model.describe(p, top_k)
            results.append({"filename": name, **{k: v for k, v in found.items() if k != "probabilities"}})
        return {"runtime": model.runtime, "predictions": results}

    @router.post("/explain", openapi_extra=MULTIPART)
    async def explain(request: Request):
        """The top class of one image and a Grad-CAM overlay of where the model looked (PNG data URL)."""
        if not model.explainable:
            raise HTTPException(404, "Grad-CAM is not available for this model (it has no pretrained Inception base).")
        (name, image), *_ = await read_images(serving, request, 1, lambda image: image)
        answer = await serving.batcher.call(model.explain, image)  # Keras is loaded on the first explanation
        overlay = await run_in_threadpool(_overlay_png, image, answer["heatmap"])
        return {"filename": name, "label": answer["class"], "probability": answer["probability"],
                "overlay": "data:image/png;base64," + base64.b64encode(overlay).decode()}

    return router


async def read_images(serving: Serving, request: Request, limit: int, prepare) -> list[tuple[str, np.ndarray]]:
    """(file name, prepare(its decoded pixels)) per uploaded image, each prepared as soon as it is decoded."""
    kind = request.headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        raise HTTPException(415, f"Send the images as multipart/form-data (field 'file'), not '{kind or 'nothing'}'.")
    try:
        form = await request.form(max_files=limit, max_fields=limit)
    except TooLarge:
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
            images.append((name, await serving.prepared(data, prepare)))
        except ImageError as exc:
            raise unusable(name, exc) from None
    return images


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
