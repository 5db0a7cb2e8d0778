"""Shared fixtures: real Redis, real PostgreSQL, real shared data.

Shared data (``../shared``) and PostgreSQL are skipped with a clear reason when absent,
except under CI (``CI`` set), where their absence is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from monitor.embedded_redis import EmbeddedRedis

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HALLMONITOR_SHARED", ROOT.parent / "shared"))
IN_CI = bool(os.environ.get("CI"))


def require_shared(*rel: str) -> Path | list[Path]:
    """Paths under ``../shared``; skip (or fail under CI) when any is missing."""
    paths = [SHARED / r for r in rel]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        msg = (
            f"shared test data missing: {', '.join(missing)} (expected beside the repo)"
        )
        if IN_CI:
            pytest.fail(msg + " - required when CI is set")
        pytest.skip(msg)
    return paths[0] if len(paths) == 1 else paths


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Redis: $REDIS_URL, else 127.0.0.1:6379 if up, else embedded."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=0.5).ping()
        yield "redis://127.0.0.1:6379/0"
        return
    except redis.RedisError:
        pass
    # /tmp keeps the Unix socket path short
    server = EmbeddedRedis(
        Path("/tmp") / f"hm-redis-{uuid.uuid4().hex[:8]}", appendonly=False
    )
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """A Redis URL; tests must use unique key/stream names (see ``unique``)."""
    return redis_server


@pytest.fixture
def unique() -> str:
    """A short unique token for stream/key names."""
    return uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of the real PostgreSQL test database (skips outside CI when absent)."""
    url = os.environ.get(
        "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    import sqlalchemy as sa

    try:
        eng = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with eng.connect() as conn:
            conn.execute(sa.text("select 1"))
        eng.dispose()
    except Exception as exc:  # noqa: BLE001 - any connection failure means "absent"
        msg = f"PostgreSQL not reachable at {url}: {exc.__class__.__name__}"
        if IN_CI:
            pytest.fail(msg + " - required when CI is set")
        pytest.skip(msg)
    return url


@pytest.fixture
def saved_occupancy() -> dict[str, object]:
    """A valid saved occupancy state (``OccupancyPipeline.snapshot()`` JSON) of rule
    ``occ`` on camera ``lot``, for the state-store and occupancy restore tests."""
    return {
        "version": 1,
        "rule_id": "occ",
        "day_start": "2026-06-01T07:00:00Z",
        "occupancy": 2,
        "entered": 3,
        "exited": 1,
        "event_id": "6f1c1d2e-8a4b-4c3d-9e2f-0a1b2c3d4e5f",
        "revision": 4,
        "camera_id": "lot",
    }


@pytest.fixture
def open_loitering_event():  # type: ignore[no-untyped-def]
    """Factory: a loitering event left open (``update``) by a stopped worker, as
    saved in a camera's state file (state-store and worker restart tests)."""
    import datetime as dt
    import uuid

    from monitor.events import Event, EventKind, EventState, LoiteringPayload

    def make(
        camera_id: str = "lot",
        revision: int = 3,
        rule_id: str = "loit",
        zone_id: str = "z",
        ts: float = 1_780_315_200.0,  # 2026-06-01 12:00 UTC
    ) -> Event:
        t = dt.datetime.fromtimestamp(ts, dt.UTC)
        return Event(
            event_id=uuid.uuid4(),
            revision=revision,
            camera_id=camera_id,
            kind=EventKind.LOITERING,
            state=EventState.UPDATE,
            severity="medium",
            ts=t + dt.timedelta(seconds=40),
            started_at=t,
            payload=LoiteringPayload(
                rule_id=rule_id,
                zone_id=zone_id,
                tracker_id=7,
                class_name="person",
                dwell_s=40.0,
                bbox_xyxy=(1.0, 2.0, 3.0, 4.0),
                threshold_s=30.0,
            ),
        )

    return make
