"""GET /: the web page (resources/index.html): drop an image, see bars."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from inceptune.serving.state import Serving


def routes(serving: Serving) -> APIRouter:
    """The page is the same for every model: it asks /labels and /predict."""
    router = APIRouter()

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return resources.files("inceptune.resources").joinpath("index.html").read_text()

    return router
