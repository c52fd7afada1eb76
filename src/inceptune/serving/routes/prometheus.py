"""GET /metrics: the app's Prometheus registry (serving/metrics.py), in the text exposition format."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from inceptune.serving.metrics import METRICS_PATH
from inceptune.serving.state import Serving


def routes(serving: Serving) -> APIRouter:
    router = APIRouter()

    @router.get(METRICS_PATH, include_in_schema=False)
    async def prometheus():
        body, kind = serving.metrics.exposition()
        return Response(body, media_type=kind)

    return router
