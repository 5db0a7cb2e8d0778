"""Typed, versioned messages that cross Redis: events and heartbeats.

An :class:`Event` is the only thing a worker sends to the review API. Its lifecycle
(``start`` → ``update``… → ``end``) shares one ``event_id``; ``revision`` increases
with every message of that event so a consumer can apply messages idempotently and
never let an older state overwrite a newer one.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import uuid
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "SCHEMA_VERSION",
    "CameraHealthPayload",
    "CameraHeartbeat",
    "CameraState",
    "CrowdingPayload",
    "Event",
    "EventKind",
    "EventPayload",
    "EventState",
    "LoiteringPayload",
    "MediaRef",
    "OccupancyPayload",
    "Severity",
    "VehicleFlowPayload",
    "WrongWayPayload",
    "media_name",
    "MessageError",
    "decode_event",
    "decode_heartbeat",
    "encode_event",
    "encode_heartbeat",
]

SCHEMA_VERSION = 1
_M = TypeVar("_M", bound=BaseModel)
MAX_MESSAGE_BYTES = 256 * 1024


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventKind(enum.StrEnum):
    """What an event is about."""

    LOITERING = "loitering"
    CROWDING = "crowding"
    VEHICLE_FLOW = "vehicle_flow"
    WRONG_WAY = "wrong_way"
    OCCUPANCY = "occupancy"
    CAMERA_HEALTH = "camera_health"


class EventState(enum.StrEnum):
    """Lifecycle position of one message of an event."""

    START = "start"
    UPDATE = "update"
    END = "end"
    INSTANT = "instant"  # one-shot events (wrong_way, a count bucket, health change)


class Severity(enum.StrEnum):
    """How urgent an event is."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


BBox = Annotated[
    tuple[float, float, float, float], Field(description="x1, y1, x2, y2 in pixels")
]
Count = Annotated[int, Field(ge=0)]

_MEDIA_RE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-"
    r"[0-9a-f]{4}-[0-9a-f]{12}(\.[a-z_]+)?\.(jpg|mp4)$"
)


def media_name(camera_id: str, event_id: uuid.UUID, variant: str, ext: str) -> str:
    """Relative media path derived only from the camera and event UUID.

    Args:
        camera_id: Camera id (validated identifier).
        event_id: The event's UUID.
        variant: ``""`` for the main file, or a suffix such as ``"boxes"``.
        ext: ``"jpg"`` or ``"mp4"``.
    """
    suffix = f".{variant}" if variant else ""
    return f"{camera_id}/{event_id}{suffix}.{ext}"


class MediaRef(_Msg):
    """A file under the media root written by a worker for an event."""

    role: Literal["snapshot", "snapshot_boxes", "clip"]
    path: str = Field(
        description="Relative to the media root: <camera>/<event uuid>..."
    )
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)
    content_type: Literal["image/jpeg", "video/mp4"]
    duration_s: float | None = Field(None, ge=0)

    @field_validator("path")
    @classmethod
    def _safe_path(cls, v: str) -> str:
        if not _MEDIA_RE.match(v) or ".." in v:
            raise ValueError(
                "media path must be <camera>/<event uuid>[.variant].jpg|mp4"
            )
        return v


class LoiteringPayload(_Msg):
    """Someone stayed in a zone too long."""

    kind: Literal["loitering"] = "loitering"
    rule_id: str
    zone_id: str
    tracker_id: int
    class_name: str
    dwell_s: float = Field(ge=0, description="Seconds in zone so far")
    bbox_xyxy: BBox
    schedule: str | None = None
    threshold_s: float = Field(ge=0, description="min_dwell_s in force, seconds")


class CrowdingPayload(_Msg):
    """N or more objects in a zone for T seconds."""

    kind: Literal["crowding"] = "crowding"
    rule_id: str
    zone_id: str
    count: Count
    max_count: Count
    duration_s: float = Field(ge=0)
    tracker_ids: tuple[int, ...] = ()
    schedule: str | None = None
    min_count: Count | None = Field(
        None, description="Group size in force when the episode started"
    )


class VehicleFlowPayload(_Msg):
    """Counts across one line for one time bucket (cumulative within the bucket)."""

    kind: Literal["vehicle_flow"] = "vehicle_flow"
    rule_id: str
    line_id: str
    bucket_start: dt.datetime
    bucket_end: dt.datetime
    counts_in: dict[str, Count] = Field(default_factory=dict)
    counts_out: dict[str, Count] = Field(default_factory=dict)


class WrongWayPayload(_Msg):
    """A vehicle crossed a one-way line against its direction."""

    kind: Literal["wrong_way"] = "wrong_way"
    rule_id: str
    line_id: str
    tracker_id: int
    class_name: str
    direction: Literal["in", "out"]
    bbox_xyxy: BBox


class OccupancyPayload(_Msg):
    """Lot occupancy from entrance lines."""

    kind: Literal["occupancy"] = "occupancy"
    rule_id: str
    occupancy: Count
    day_start: dt.datetime
    entered: Count
    exited: Count


class CameraHealthPayload(_Msg):
    """The camera's state changed (offline, failed, frozen, tampered …)."""

    kind: Literal["camera_health"] = "camera_health"
    status: Literal[
        "online", "offline", "failed", "frozen", "black", "uniform", "tamper",
        "resolution_change", "error",
    ]  # fmt: skip
    message: str = Field("", max_length=2000)


EventPayload = Annotated[
    LoiteringPayload
    | CrowdingPayload
    | VehicleFlowPayload
    | WrongWayPayload
    | OccupancyPayload
    | CameraHealthPayload,
    Field(discriminator="kind"),
]


def _utc(v: dt.datetime) -> dt.datetime:
    if v.tzinfo is None:
        raise ValueError("timestamp must carry a time zone")
    return v.astimezone(dt.UTC)


class Event(_Msg):
    """One message of an event, as sent over Redis (schema version 1)."""

    schema_version: Literal[1] = 1
    event_id: uuid.UUID
    revision: int = Field(0, ge=0, le=1_000_000, description="Increases per message")
    camera_id: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
    )
    kind: EventKind
    state: EventState
    severity: Severity = Severity.MEDIUM
    ts: dt.datetime = Field(description="UTC time of this message's observation")
    started_at: dt.datetime = Field(description="UTC time the event began")
    ended_at: dt.datetime | None = None
    model_sha256: str = Field("", pattern=r"^([0-9a-f]{64})?$")
    payload: EventPayload
    media: tuple[MediaRef, ...] = ()

    _ts = field_validator("ts", "started_at", "ended_at")(
        classmethod(lambda cls, v: None if v is None else _utc(v))
    )

    @model_validator(mode="after")
    def _consistent(self) -> Event:
        if self.payload.kind != self.kind.value:
            raise ValueError(
                f"payload kind {self.payload.kind!r} does not match event kind "
                f"{self.kind.value!r}"
            )
        for m in self.media:
            if not m.path.startswith(f"{self.camera_id}/{self.event_id}"):
                raise ValueError(
                    "media path must be derived from camera id and event id"
                )
        return self

    @classmethod
    def new(cls, **kw: Any) -> Event:
        """Build an event with a fresh UUID (worker side)."""
        kw.setdefault("event_id", uuid.uuid4())
        return cls(**kw)


class CameraState(enum.StrEnum):
    """Camera status shown on the camera wall."""

    STARTING = "starting"
    ONLINE = "online"
    OFFLINE = "offline"
    FAILED = "failed"
    STOPPED = "stopped"


class CameraHeartbeat(_Msg):
    """Periodic worker status (schema version 1)."""

    schema_version: Literal[1] = 1
    camera_id: str
    state: CameraState
    ts: dt.datetime
    fps_in: float = Field(0.0, ge=0)
    fps_out: float = Field(0.0, ge=0)
    frames_dropped: Count = 0
    reconnects_1h: Count = 0
    last_frame_ts: dt.datetime | None = None
    message: str = Field("", max_length=2000)
    pid: int | None = None
    detector_calls: Count = 0
    events_spooled: Count = 0
    events_dropped: Count = 0


class MessageError(ValueError):
    """A stream message could not be decoded; ``reason`` is safe to store."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Stream entry layout: {"v": "<schema version>", "type": "event"|"heartbeat", "data": json}
def encode_event(event: Event) -> dict[str, str]:
    """Fields for ``XADD`` of one event."""
    return {"v": str(SCHEMA_VERSION), "type": "event", "data": event.model_dump_json()}


def encode_heartbeat(hb: CameraHeartbeat) -> dict[str, str]:
    """Fields for ``XADD`` of one heartbeat."""
    return {"v": str(SCHEMA_VERSION), "type": "heartbeat", "data": hb.model_dump_json()}


def _fields_str(fields: dict[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in fields.items():
        key = k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)
        out[key] = v
    return out


def _decode(fields: dict[Any, Any], typ: str, model: type[_M]) -> _M:
    """Validate one stream entry of type ``typ`` into ``model``.

    Raises:
        MessageError: unknown version/type, oversized, not JSON, or schema mismatch.
    """
    f = _fields_str(fields)
    v = f.get("v")
    v = v.decode("utf-8", "replace") if isinstance(v, bytes) else v
    if v != str(SCHEMA_VERSION):
        raise MessageError(f"unsupported schema version {str(v)[:20]!r}")
    got = f.get("type")
    got = got.decode("utf-8", "replace") if isinstance(got, bytes) else got
    if got != typ:
        raise MessageError(f"unexpected message type {str(got)[:20]!r}")
    data = f.get("data")
    if data is None:
        raise MessageError("missing 'data' field")
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        # Without input values: a hostile message must not be echoed into logs.
        errs = exc.errors(include_url=False, include_input=False, include_context=False)
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
            for e in errs[:8]
        )
        raise MessageError(f"invalid {typ}: {detail}"[:1000]) from None


def decode_event(fields: dict[Any, Any]) -> Event:
    """Validate a stream entry into an :class:`Event` (raises :class:`MessageError`)."""
    return _decode(fields, "event", Event)


def decode_heartbeat(fields: dict[Any, Any]) -> CameraHeartbeat:
    """Validate a stream entry into a :class:`CameraHeartbeat` (raises
    :class:`MessageError`)."""
    return _decode(fields, "heartbeat", CameraHeartbeat)
