"""Fixtures for API/storage tests: stores on SQLite and PostgreSQL, events, users."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from api.storage import EventStore
from monitor.events import (
    Event,
    LoiteringPayload,
    MediaRef,
    VehicleFlowPayload,
    media_name,
)

T0 = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)


def pg_schema_url(base: str, schema: str) -> str:
    """``base`` with ``search_path`` pinned to ``schema``."""
    return (
        sa.make_url(base)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[EventStore]:
    """A migrated store on a fresh SQLite file."""
    s = EventStore.from_url(
        f"sqlite:///{tmp_path / 'events.db'}", media_root=tmp_path / "media"
    )
    yield s
    s.close()


@pytest.fixture
def pg_store(postgres_url: str, unique: str, tmp_path: Path) -> Iterator[EventStore]:
    """A migrated store in a private PostgreSQL schema (dropped afterwards)."""
    schema = f"hm_{unique}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    s = EventStore.from_url(
        pg_schema_url(postgres_url, schema), media_root=tmp_path / "media"
    )
    try:
        yield s
    finally:
        s.close()
        with admin.begin() as c:
            c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> EventStore:
    """The store under test, on both databases."""
    return request.getfixturevalue(f"{request.param}_store".replace("postgresql", "pg"))


def loiter(
    *,
    event_id: uuid.UUID | None = None,
    camera_id: str = "cam-a",
    revision: int = 0,
    state: str = "start",
    ts: dt.datetime = T0,
    dwell_s: float = 5.0,
    media: tuple[MediaRef, ...] = (),
    severity: str = "medium",
) -> Event:
    """A loitering event message."""
    return Event(
        event_id=event_id or uuid.uuid4(),
        revision=revision,
        camera_id=camera_id,
        kind="loitering",
        state=state,
        severity=severity,
        ts=ts,
        started_at=T0 if ts >= T0 else ts,
        ended_at=ts if state == "end" else None,
        payload=LoiteringPayload(
            rule_id="r1",
            zone_id="door",
            tracker_id=7,
            class_name="person",
            dwell_s=dwell_s,
            bbox_xyxy=(1, 2, 3, 4),
            threshold_s=3.0,
        ),
        media=media,
    )


def flow(
    *,
    camera_id: str = "gate",
    line_id: str = "entry",
    bucket_start: dt.datetime = T0,
    counts_in: dict[str, int] | None = None,
    counts_out: dict[str, int] | None = None,
    revision: int = 0,
    event_id: uuid.UUID | None = None,
) -> Event:
    """A vehicle_flow bucket event."""
    end = bucket_start + dt.timedelta(minutes=15)
    return Event(
        event_id=event_id or uuid.uuid4(),
        revision=revision,
        camera_id=camera_id,
        kind="vehicle_flow",
        state="instant",
        ts=end,
        started_at=bucket_start,
        payload=VehicleFlowPayload(
            rule_id="flow",
            line_id=line_id,
            bucket_start=bucket_start,
            bucket_end=end,
            counts_in=counts_in or {},
            counts_out=counts_out or {},
        ),
    )


@pytest.fixture
def write_media(tmp_path: Path) -> Callable[..., MediaRef]:
    """Write a media file under ``tmp_path/media`` and return its MediaRef."""
    import hashlib

    def _write(camera_id: str, event_id: uuid.UUID, role: str, data: bytes) -> MediaRef:
        variant, ext, ctype = {
            "snapshot": ("", "jpg", "image/jpeg"),
            "snapshot_boxes": ("boxes", "jpg", "image/jpeg"),
            "clip": ("", "mp4", "video/mp4"),
        }[role]
        rel = media_name(camera_id, event_id, variant, ext)
        p = tmp_path / "media" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        kw: dict[str, Any] = {"duration_s": 5.0} if role == "clip" else {}
        return MediaRef(
            role=role,
            path=rel,
            sha256=hashlib.sha256(data).hexdigest(),
            bytes=len(data),
            content_type=ctype,
            **kw,
        )

    return _write
