"""Request and response models of the review API (derived from monitor.events)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from monitor.events import EventKind, EventState, Severity

__all__ = [
    "AuditOut",
    "CameraOut",
    "DeadLetterOut",
    "ErrorOut",
    "EventOut",
    "EventPage",
    "HoldIn",
    "MediaOut",
    "ReviewIn",
    "ReviewOut",
    "TrafficBucket",
    "TrafficReport",
]

ReviewStatus = Literal["new", "acknowledged", "dismissed", "escalated"]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorOut(BaseModel):
    """Every 4xx/5xx body."""

    error: str
    details: list[dict[str, Any]] | None = None


class MediaOut(_Out):
    """A media file of an event (served by URL, never by path)."""

    role: Literal["snapshot", "snapshot_boxes", "clip"]
    content_type: str
    bytes: int
    sha256: str
    duration_s: float | None = None
    url: str


class EventOut(_Out):
    """One event in its latest revision."""

    id: uuid.UUID
    camera_id: str
    kind: EventKind
    state: EventState
    severity: Severity
    revision: int
    ts: dt.datetime
    started_at: dt.datetime
    ended_at: dt.datetime | None
    model_sha256: str
    payload: dict[str, Any]
    review_status: ReviewStatus
    legal_hold: bool
    media: list[MediaOut] = []


class EventPage(BaseModel):
    """A page of events; pass ``next_cursor`` as ``cursor`` for the next one."""

    items: list[EventOut]
    next_cursor: str | None


class ReviewIn(BaseModel):
    """A review decision."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["acknowledge", "dismiss", "escalate"]
    note: str = Field("", max_length=2000)


class ReviewOut(_Out):
    """A stored review decision."""

    event_id: uuid.UUID
    user_name: str
    action: str
    note: str
    created_at: dt.datetime


class HoldIn(BaseModel):
    """Set or clear legal hold."""

    model_config = ConfigDict(extra="forbid")

    hold: bool = True


class CameraOut(BaseModel):
    """Latest status of one camera."""

    camera_id: str
    state: str
    stale: bool
    ts: dt.datetime
    fps_in: float
    fps_out: float
    frames_dropped: int
    reconnects_1h: int
    last_frame_ts: dt.datetime | None
    message: str


class TrafficBucket(BaseModel):
    """Summed counts of one line in one time bucket."""

    camera_id: str
    line_id: str
    bucket_start: dt.datetime
    counts_in: dict[str, int]
    counts_out: dict[str, int]


class TrafficReport(BaseModel):
    """Vehicle-flow counts per bucket, class and direction."""

    since: dt.datetime
    until: dt.datetime
    bucket_s: int
    tz: str = Field("UTC", description="Time zone the buckets are aligned to")
    buckets: list[TrafficBucket]


class DeadLetterOut(BaseModel):
    """One dead-lettered stream message."""

    id: str
    stream: str
    original_id: str
    reason: str
    type: str
    v: str
    data: str
    data_bytes: int


class AuditOut(_Out):
    """One audit row."""

    user_name: str
    action: str
    object_type: str
    object_id: str
    camera_id: str | None
    at: dt.datetime
