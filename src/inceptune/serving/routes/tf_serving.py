"""TF Serving REST (requests and answers in deploy/protocols.py).

    GET  /v1/models/{name}                  the model's version status
    POST /v1/models/{name}:predict          {"instances": [{"b64": ...}]} -> one dict of outputs per instance
    POST /v1/models/{name}:classify         {"examples": [...]} -> [label, score] pairs per example, best first
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from inceptune.deploy import protocols
from inceptune.serving.state import MODEL_VERSION, Serving


def routes(serving: Serving) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/models/{model_name}")
    async def tf_status(model_name: str):
        """TF Serving REST: the model's version status."""
        serving.known(model_name)
        return {"model_version_status": [{"version": MODEL_VERSION, "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}

    @router.post("/v1/models/{target}")
    async def tf_serving(request: Request, target: str):
        """TF Serving REST: `NAME:predict` ({"instances": [{"b64": ...}]}) and `NAME:classify` ({"examples": ...})."""
        model_name, _, verb = target.rpartition(":")
        if verb not in ("predict", "classify"):
            raise HTTPException(404, f"Use /v1/models/{serving.name}:predict or :classify.")
        serving.known(model_name)
        try:
            blobs = protocols.parse_tf_serving(await request.body(), verb)
        except protocols.ProtocolError as exc:
            raise HTTPException(400, str(exc)) from None
        outputs = await serving.answered(await serving.decoded(blobs))
        if verb == "classify":
            return {"results": protocols.tf_serving_classes(serving.classes, outputs[protocols.PROBABILITIES])}
        return {"predictions": protocols.tf_serving_predictions(outputs)}

    return router
