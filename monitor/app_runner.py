"""``hallmonitor run``: one box runs Redis (embedded if needed), the camera workers
under a supervisor, the Redis consumer and the API."""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing as mp
import os
import secrets
import signal
import threading
from pathlib import Path
from typing import Any

from config.schema import AppConfig
from monitor.embedded_redis import EmbeddedRedis, resolve_redis_url
from monitor.state import retire_state_files
from monitor.worker import camera_process_main, media_root, state_dir

__all__ = ["database_url", "ensure_admin_token", "open_store", "run_all"]

log = logging.getLogger(__name__)


def database_url(app: AppConfig) -> str:
    """Config URL, else env ``DATABASE_URL``, else SQLite under the data dir."""
    url = app.storage.url or os.environ.get("DATABASE_URL")
    if url:
        return url
    Path(app.data_dir).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(app.data_dir).resolve() / 'hallmonitor.db'}"


def open_store(app: AppConfig) -> Any:
    """The event store for this deployment (migrated to the latest schema)."""
    from api.storage import EventStore

    return EventStore.from_url(database_url(app))


def ensure_admin_token(app: AppConfig) -> Path | None:
    """Make sure an admin token exists: env ``HALLMONITOR_ADMIN_TOKEN``, else one
    generated once into ``<data_dir>/admin_token`` (mode 0600) and exported.

    Returns:
        The token file used, or None when the token came from the environment.
    """
    if os.environ.get("HALLMONITOR_ADMIN_TOKEN"):
        return None
    path = Path(app.data_dir) / "admin_token"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
    os.environ["HALLMONITOR_ADMIN_TOKEN"] = path.read_text().strip()
    return path


def run_all(
    app: AppConfig,
    *,
    config_path: str,
    host: str | None = None,
    port: int | None = None,
    duration_s: float | None = None,
) -> int:
    """Run everything until SIGINT/SIGTERM (or ``duration_s``); return an exit code."""
    import redis
    import uvicorn

    from api.main import create_app
    from api.settings import ApiSettings
    from monitor.events import (
        CameraHealthPayload,
        CameraHeartbeat,
        CameraState,
        Event,
        EventKind,
        EventState,
        Severity,
        encode_event,
        encode_heartbeat,
    )
    from monitor.supervisor import Supervisor

    Path(app.data_dir).mkdir(parents=True, exist_ok=True)
    media_root(app).mkdir(parents=True, exist_ok=True)
    embedded: EmbeddedRedis | None = None
    url = resolve_redis_url(app.redis.url)
    if not url:
        embedded = EmbeddedRedis(app.data_dir)
        url = embedded.start()
        log.info("no REDIS_URL configured: started embedded redis")
    # Children inherit the environment (spawn start method).
    os.environ["HALLMONITOR_REDIS_URL"] = url
    r = redis.Redis.from_url(url)
    store = open_store(app)
    token_file = ensure_admin_token(app)
    if token_file is not None:
        log.info("admin API token: %s (Authorization: Bearer <token>)", token_file)

    ctx = mp.get_context("spawn")
    stop_event = ctx.Event()
    cameras = [c.id for c in app.cameras if c.enabled]
    service: Any = None
    svc_stop = threading.Event()
    if app.supervisor.shared_detector and cameras:
        from monitor.detector_service import DetectorService

        service = DetectorService(app.detector, len(cameras))
        info = service.start()
        log.info("shared detector: %s (%s)", info.model_name, info.model_sha256[:12])
    slots = {cid: i for i, cid in enumerate(cameras)}

    def factory(camera_id: str) -> Any:
        det = service.client(slots[camera_id]) if service is not None else None
        return ctx.Process(
            target=camera_process_main,
            args=(config_path, camera_id, stop_event, det),
            name=f"camera-{camera_id}",
        )

    def on_alert(camera_id: str, message: str) -> None:
        now = dt.datetime.now(dt.UTC)
        ev = Event.new(
            camera_id=camera_id,
            kind=EventKind.CAMERA_HEALTH,
            state=EventState.INSTANT,
            severity=Severity.HIGH,
            ts=now,
            started_at=now,
            payload=CameraHealthPayload(status="failed", message=message[:2000]),
        )
        hb = CameraHeartbeat(
            camera_id=camera_id,
            state=CameraState.FAILED,
            ts=now,
            message=message[:2000],
        )
        try:
            r.xadd(
                app.redis.stream,
                encode_event(ev),  # type: ignore[arg-type]
                maxlen=app.redis.maxlen,
                approximate=True,
            )
            r.xadd(
                app.redis.heartbeat_stream,
                encode_heartbeat(hb),  # type: ignore[arg-type]
                maxlen=10_000,
                approximate=True,
            )
        except redis.RedisError:
            log.exception(
                "could not publish the failure alert for camera %s", camera_id
            )

    def detector_down(message: str) -> None:
        for cid in cameras:
            on_alert(cid, message)

    if service is not None:
        # Restarted when it dies (same budget as camera workers); the workers keep
        # their handles and carry on.
        threading.Thread(
            target=service.watch,
            args=(svc_stop,),
            kwargs={
                "on_down": detector_down,
                "max_restarts": app.supervisor.max_restarts,
                "window_s": app.supervisor.restart_window_s,
            },
            name="detector-watchdog",
            daemon=True,
        ).start()

    def publish(event: Event) -> None:
        r.xadd(
            app.redis.stream,
            encode_event(event),  # type: ignore[arg-type]
            maxlen=app.redis.maxlen,
            approximate=True,
        )

    # Events left open by cameras that no longer run would stay "ongoing" forever.
    retire_state_files(state_dir(app), set(cameras), publish)
    sup = Supervisor(factory, cameras, app.supervisor, on_alert=on_alert)
    sup_stop = threading.Event()
    sup.start()
    sup_thread = threading.Thread(
        target=sup.run, args=(sup_stop,), name="supervisor", daemon=True
    )
    sup_thread.start()

    settings = ApiSettings.from_config(app)
    api = create_app(
        store=store,
        media_root=media_root(app),
        redis=r,
        settings=settings,
        start_consumer=True,
        consumer_kwargs={
            **settings.consumer_kwargs(app),
            "consumer": f"api-{os.getpid()}",
        },
    )
    server = uvicorn.Server(
        uvicorn.Config(
            api,
            host=host or app.api.host,
            port=port or app.api.port,
            log_config=None,
            access_log=False,
        )
    )
    if duration_s:
        timer = threading.Timer(
            duration_s, lambda: setattr(server, "should_exit", True)
        )
        timer.daemon = True
        timer.start()
    log.info(
        "hallmonitor: %d camera(s), API on http://%s:%d",
        len(cameras),
        host or app.api.host,
        port or app.api.port,
    )
    # uvicorn re-raises the signal that stopped it once it has shut down; with the
    # default handler that would kill this process before the cleanup below runs
    # (workers, detector process and embedded Redis would be orphaned).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: None)
    try:
        server.run()
    finally:
        log.info("shutting down")
        stop_event.set()
        sup_stop.set()
        sup.stop(app.supervisor.shutdown_timeout_s)
        sup_thread.join(timeout=2)
        svc_stop.set()
        if service is not None:
            service.stop()
        if embedded is not None:
            embedded.stop()
    return 0
