"""Liveness/readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    """200 when the database answers (Redis reported, not required)."""
    db = request.app.state.store.ping()
    r = request.app.state.redis
    red: bool | None = None
    if r is not None:
        try:
            red = bool(r.ping())
        except Exception:  # noqa: BLE001 - any failure is "down"
            red = False
    return JSONResponse(
        {"status": "ok" if db else "degraded", "database": db, "redis": red},
        status_code=200 if db else 503,
    )
