"""FastAPI app factory of the review API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from api.consumer import EventConsumer
from api.retention import retention_loop
from api.routers import admin, cameras, events, health, pages, reports
from api.settings import ApiSettings
from api.storage import EventStore, StoreError

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(
    *,
    store: EventStore,
    media_root: Path,
    redis: redis.Redis | None = None,
    settings: ApiSettings | None = None,
    start_consumer: bool = False,
    consumer_kwargs: dict[str, Any] | None = None,
) -> FastAPI:
    """Build the review API.

    Args:
        store: Event database.
        media_root: Root of event media (files served only via database rows).
        redis: Client for the consumer and the dead-letter view (optional).
        settings: API settings (default: from the environment).
        start_consumer: Run an :class:`EventConsumer` thread during the lifespan.
        consumer_kwargs: ``EventConsumer`` keyword arguments (stream, group, …).

    Raises:
        ValueError: a weak ``HALLMONITOR_ADMIN_TOKEN``, or a consumer without Redis.
    """
    settings = settings or ApiSettings.from_env()
    if start_consumer and redis is None:
        raise ValueError("start_consumer needs a Redis client")
    token = os.environ.get(settings.admin_token_env)
    if token:
        try:
            store.ensure_admin_token(token)
        except StoreError as exc:
            raise ValueError(f"{settings.admin_token_env}: {exc}") from None
    if store.media_root is None:
        store.media_root = media_root

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = None
        if start_consumer and redis is not None:
            kw = {
                "stream": "hallmonitor:events",
                "group": "hallmonitor-api",
                "consumer": f"api-{socket.gethostname()}",
                "dead_letter_stream": settings.dead_letter_stream,
                **(consumer_kwargs or {}),
            }
            consumer = EventConsumer(redis, store, **kw)
            app.state.consumer = consumer
            thread = threading.Thread(
                target=consumer.run, args=(stop,), name="event-consumer", daemon=True
            )
            thread.start()
        task = None
        if settings.retention_interval_s > 0:
            task = asyncio.create_task(
                retention_loop(
                    store, settings.retention_days, settings.retention_interval_s
                )
            )
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if thread is not None:
                thread.join(timeout=5)

    app = FastAPI(title="hallmonitor review API", version="1", lifespan=lifespan)
    app.state.store = store
    app.state.media_root = Path(media_root)
    app.state.redis = redis
    app.state.settings = settings
    app.state.consumer = None

    @app.exception_handler(HTTPException)
    async def _http_error(_req: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": str(exc.detail)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        # Location and message only: never echo the (possibly hostile) input back.
        details = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", "")}
            for e in exc.errors()[:20]
        ]
        return JSONResponse({"error": "invalid request", "details": details}, 422)

    @app.exception_handler(sa.exc.OperationalError)
    async def _db_down(_req: Request, exc: sa.exc.OperationalError) -> JSONResponse:
        # Driver messages can carry connection details: log the type only.
        log.warning("database unavailable during request (%s)", type(exc.orig).__name__)
        return JSONResponse({"error": "database unavailable"}, 503)

    @app.exception_handler(Exception)
    async def _crash(_req: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled %s in request", type(exc).__name__)
        return JSONResponse({"error": "internal error"}, 500)

    for r in (
        events.router,
        cameras.router,
        reports.router,
        admin.router,
        health.router,
        pages.router,
    ):
        app.include_router(r)
    return app
