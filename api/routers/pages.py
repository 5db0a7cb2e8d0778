"""Web pages: review queue, camera wall, traffic (static HTML + JS over the API).

The pages carry no data: they fetch the JSON API with the officer's token, so the
same per-camera access checks and audit apply. Files are served from a fixed table,
never from a path in the request.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

__all__ = ["router"]

router = APIRouter(tags=["pages"], include_in_schema=False)

_FILES = {
    "index.html": "text/html; charset=utf-8",
    "wall.html": "text/html; charset=utf-8",
    "traffic.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


def _file(name: str) -> Response:
    media_type = _FILES.get(name)
    if media_type is None:
        raise HTTPException(404, "not found")
    data = resources.files("api").joinpath("web", name).read_bytes()
    return Response(data, media_type=media_type, headers=_HEADERS)


@router.get("/")
def review_page() -> Response:
    """Review queue."""
    return _file("index.html")


@router.get("/wall")
def wall_page() -> Response:
    """Camera wall."""
    return _file("wall.html")


@router.get("/traffic")
def traffic_page() -> Response:
    """Traffic counts per line and bucket, with a CSV download."""
    return _file("traffic.html")


@router.get("/static/{name}")
def static(name: str) -> Response:
    """Page assets (fixed table of names)."""
    return _file(name)
