"""Top-level configuration schema: cameras, zones, lines, services.

Every model is strict (``extra="forbid"``); every threshold carries units and bounds.
Zones and lines are in relative 0-1 coordinates; pixels are derived once the frame size
is known. Camera credentials are never inline: they come from environment variables
or a secrets file named here.
"""

from __future__ import annotations

import math
import re
import zoneinfo
from collections import Counter
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from config.base import Identifier, RelPoint, StrictModel
from config.detector import DetectorConfig
from config.rules import (
    CrowdingRuleConfig,
    LoiteringRuleConfig,
    RulesConfig,
    VehicleFlowRuleConfig,
)
from config.tracker import TrackerConfig

__all__ = [
    "AppConfig",
    "ApiConfig",
    "CameraConfig",
    "CredentialsConfig",
    "EvidenceConfig",
    "GatingConfig",
    "MotionConfig",
    "LineConfig",
    "RedisConfig",
    "SourceConfig",
    "StorageConfig",
    "SupervisorConfig",
    "ZoneConfig",
]

_ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"


def _polygon_area(points: tuple[tuple[float, float], ...]) -> float:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    n = len(points)
    return 0.5 * abs(
        sum(xs[i] * ys[(i + 1) % n] - xs[(i + 1) % n] * ys[i] for i in range(n))
    )


class ZoneConfig(StrictModel):
    """A polygon region of the frame."""

    id: Identifier
    name: str = Field("", max_length=200, description="Human-readable name")
    polygon: tuple[RelPoint, ...] = Field(
        min_length=3, max_length=256, description="Vertices, relative 0-1 (x, y)"
    )

    @field_validator("polygon")
    @classmethod
    def _non_degenerate(
        cls, v: tuple[tuple[float, float], ...]
    ) -> tuple[tuple[float, float], ...]:
        if _polygon_area(v) < 1e-6:
            raise ValueError("polygon has (near) zero area; check the vertex order")
        return v


class LineConfig(StrictModel):
    """A counting line from ``start`` to ``end``.

    ``in_direction`` says which motion counts as "in": the image-space direction a
    crossing object moves in (up = towards the top of the frame). It must not be
    parallel to the line.
    """

    id: Identifier
    name: str = Field("", max_length=200)
    start: RelPoint
    end: RelPoint
    in_direction: Literal["up", "down", "left", "right"] = Field(
        "down", description="Motion across the line that counts as 'in'"
    )

    @model_validator(mode="after")
    def _valid_line(self) -> LineConfig:
        dx, dy = self.end[0] - self.start[0], self.end[1] - self.start[1]
        length = math.hypot(dx, dy)
        if length < 1e-3:
            raise ValueError("line start and end are (nearly) the same point")
        vec = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}[
            self.in_direction
        ]
        # |sin| of the angle between the line and the in-direction
        cross = abs(dx * vec[1] - dy * vec[0]) / length
        if cross < 0.2:
            raise ValueError(
                f"in_direction {self.in_direction!r} is (nearly) parallel to the line; "
                "choose a direction that crosses it"
            )
        return self


class CredentialsConfig(StrictModel):
    """Where a camera's user name and password come from (never inline)."""

    username_env: str | None = Field(None, pattern=_ENV_NAME)
    password_env: str | None = Field(None, pattern=_ENV_NAME)
    secret: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="Key in the secrets file (AppConfig.secrets_file) holding "
        "{username, password}",
    )

    @model_validator(mode="after")
    def _one_source(self) -> CredentialsConfig:
        env = self.username_env or self.password_env
        if env and self.secret:
            raise ValueError("use either *_env or secret, not both")
        if not env and not self.secret:
            raise ValueError("credentials need username_env/password_env or secret")
        return self


class SourceConfig(StrictModel):
    """Where frames come from."""

    url: str = Field(
        min_length=1,
        max_length=2048,
        description="rtsp://, rtsps://, http(s):// (MJPEG), file path, or device:N",
    )
    detect_url: str | None = Field(
        None,
        min_length=1,
        max_length=2048,
        description="Lower-resolution sub-stream of the same camera used for "
        "detection instead of url (decoding 640x360 costs a fraction of 1080p); "
        "same credentials",
    )
    credentials: CredentialsConfig | None = None
    transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP transport")
    loop: bool = Field(False, description="Files: restart at the end")
    realtime: bool = Field(False, description="Files: pace reads at the native fps")
    open_timeout_s: float = Field(10.0, gt=0, le=120, description="Seconds")
    read_timeout_s: float = Field(5.0, gt=0, le=120, description="Seconds")
    stall_s: float = Field(
        5.0, gt=0, le=600, description="Seconds without a frame before reconnecting"
    )
    backoff_initial_s: float = Field(1.0, gt=0, le=60, description="Seconds")
    backoff_max_s: float = Field(30.0, gt=0, le=3600, description="Seconds")

    @field_validator("url", "detect_url")
    @classmethod
    def _no_inline_secret(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", v):
            parts = urlsplit(v)
            if parts.username is not None or parts.password is not None:
                # Do not echo the value: it holds a credential.
                raise ValueError(
                    "credentials must not be written inline in the source URL; use "
                    "`credentials:` (environment variables or the secrets file)"
                )
            if parts.scheme not in {"rtsp", "rtsps", "http", "https", "file"}:
                raise ValueError(f"unsupported URL scheme {parts.scheme!r}")
        return v

    @model_validator(mode="after")
    def _backoff(self) -> SourceConfig:
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError("backoff_initial_s must be <= backoff_max_s")
        return self


class EvidenceConfig(StrictModel):
    """Snapshots and clips kept per event."""

    buffer_s: float = Field(10.0, ge=0, le=120, description="Seconds of frames kept")
    buffer_width: int = Field(640, ge=64, le=3840, description="Pixels (frames scaled)")
    pre_s: float = Field(3.0, ge=0, le=60, description="Clip seconds before the event")
    post_s: float = Field(2.0, ge=0, le=60, description="Clip seconds after the event")
    clips: bool = Field(True, description="Encode an H.264 MP4 clip per event")
    jpeg_quality: int = Field(85, ge=10, le=100)


class MotionConfig(StrictModel):
    """Cheap motion detection on a small grey copy of each sampled frame."""

    width: int = Field(
        160, ge=32, le=1280, description="Pixels: width of the grey copy differenced"
    )
    threshold: float = Field(
        25.0, ge=1, le=255, description="Grey levels a pixel must change by to count"
    )
    min_area_frac: float = Field(
        0.0005, ge=0, le=1, description="Fraction of the image a moving blob must cover"
    )
    alpha: float = Field(
        0.1, gt=0, le=1, description="Background learning rate per sampled frame (0-1]"
    )
    max_changed_frac: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Changed fraction above which the change is treated "
        "as lighting/scene change, not motion (0-1]",
    )
    absorb_after_s: float = Field(
        2.0,
        ge=0,
        le=3600,
        description="Seconds a pixel may stay 'moving' before the background learns "
        "it at the normal rate again (moving pixels learn 10x slower): a car that left "
        "otherwise leaves a ghost that reads as motion for ~20 s. Objects still there "
        "are tracked, not motion-gated. 0: never",
    )
    mask: tuple[tuple[RelPoint, ...], ...] = Field(
        (),
        description="Polygons (relative 0-1) ignored by motion detection "
        "(timestamps, trees, flags)",
    )


class GatingConfig(StrictModel):
    """When and where the detector runs."""

    mode: Literal["full", "motion", "regions"] = Field(
        "regions",
        description="full: detect the whole frame on every sampled frame; motion: skip "
        "the detector when nothing moves and nothing is tracked; regions: motion-gated "
        "and detect only crops around motion and tracks",
    )
    full_frame_interval_s: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="Seconds between full-frame refreshes (finds "
        "objects that stand still)",
    )
    region_margin: float = Field(
        0.25, ge=0, le=2, description="Fraction of a box's size added around it"
    )
    max_regions: int = Field(
        1,
        ge=1,
        le=16,
        description="Crops per frame. Each crop costs one inference, "
        "as much as a full frame, so more than one only pays with a batched detector",
    )
    max_region_frac: float = Field(
        0.6,
        gt=0,
        le=1,
        description="Several crops covering more than this fraction of the frame "
        "are replaced by one full-frame pass (each crop costs one inference)",
    )
    min_region_zoom: float = Field(
        1.1,
        ge=1,
        le=10,
        description="A single crop (same cost as the full frame) is replaced by one "
        "full-frame pass when the detector would see it less than this many times "
        "larger than the letterboxed frame (long side of the frame / long side of "
        "the crop)",
    )
    idle_fps: float | None = Field(
        None,
        gt=0,
        le=60,
        description="Frames/s sampled while nothing moves and nothing is tracked "
        "(null: the camera's detect_fps)",
    )
    active_fps: float | None = Field(
        None,
        gt=0,
        le=60,
        description="Frames/s sampled while something moves or is tracked inside a "
        "rule's zone/line area (null: the camera's detect_fps)",
    )
    stationary_after_s: float = Field(
        3.0,
        ge=0,
        le=3600,
        description="Seconds a tracked box must stay put (centre moved less than 10 % "
        "of its size) to count as stationary; a stationary track alone no longer "
        "keeps the detector running at the sampling rate (a parked car or a sleeping "
        "camera must not cost 5 detections/s forever). 0: every track counts",
    )
    stationary_check_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Seconds between detections that only re-confirm stationary "
        "tracks; keep it below tracker.lost_buffer_s so that they are not dropped",
    )
    restrict_to_rules: bool = Field(
        True,
        description="regions mode: detect only around the camera's zones and lines "
        "(their bounding boxes plus rule_margin), at native resolution where they fit "
        "the model input; other motion is ignored. Off, or no zones/lines: crops "
        "around any motion and tracks",
    )
    rule_margin: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Fraction of the frame size added around each zone/line box "
        "(room to pick up objects approaching it)",
    )


class CameraConfig(StrictModel):
    """One camera and what to watch on it."""

    id: Identifier
    name: str = Field("", max_length=200)
    enabled: bool = True
    source: SourceConfig
    detect_fps: float = Field(
        5.0, gt=0, le=60, description="Target detections per second"
    )
    timezone: str = Field("UTC", description="IANA time zone of the camera's site")
    zones: tuple[ZoneConfig, ...] = ()
    lines: tuple[LineConfig, ...] = ()
    rules: RulesConfig = RulesConfig()
    evidence: EvidenceConfig = EvidenceConfig()
    motion: MotionConfig = MotionConfig()
    gating: GatingConfig = GatingConfig()

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @model_validator(mode="after")
    def _cross_refs(self) -> CameraConfig:
        check_unique_ids("zones", [z.id for z in self.zones])
        check_unique_ids("lines", [ln.id for ln in self.lines])
        check_rule_refs(self)
        return self

    def zone(self, zone_id: str) -> ZoneConfig:
        """The zone with ``zone_id`` (KeyError if absent)."""
        for z in self.zones:
            if z.id == zone_id:
                return z
        raise KeyError(zone_id)

    def line(self, line_id: str) -> LineConfig:
        """The line with ``line_id`` (KeyError if absent)."""
        for ln in self.lines:
            if ln.id == line_id:
                return ln
        raise KeyError(line_id)


def check_unique_ids(what: str, ids: list[str]) -> None:
    """Raise if ``ids`` holds duplicates."""
    dup = sorted(k for k, n in Counter(ids).items() if n > 1)
    if dup:
        raise ValueError(f"duplicate {what} id(s): {dup}")


def check_rule_refs(cam: CameraConfig) -> None:
    """Rules must name zones/lines that exist on the camera; rule ids unique."""
    zones = {z.id for z in cam.zones}
    lines = {ln.id for ln in cam.lines}
    r = cam.rules
    zone_rules: list[LoiteringRuleConfig | CrowdingRuleConfig] = [
        *r.loitering,
        *r.crowding,
    ]
    for rule in zone_rules:
        if rule.zone not in zones:
            raise ValueError(
                f"rule {rule.id!r} refers to unknown zone {rule.zone!r} "
                f"(camera zones: {sorted(zones)})"
            )
    flow_ids = {f.id for f in r.vehicle_flow}
    for f in r.vehicle_flow:
        if f.line not in lines:
            raise ValueError(
                f"rule {f.id!r} refers to unknown line {f.line!r} "
                f"(camera lines: {sorted(lines)})"
            )
    for occ in r.occupancy:
        missing = [x for x in occ.lines if x not in flow_ids]
        if missing:
            raise ValueError(
                f"occupancy {occ.id!r} refers to unknown vehicle_flow rule(s) {missing}"
            )
    all_ids = [x.id for x in r.loitering] + [x.id for x in r.crowding]
    all_ids += [x.id for x in r.vehicle_flow] + [x.id for x in r.occupancy]
    check_unique_ids("rules", all_ids)


class RedisConfig(StrictModel):
    """Redis Streams transport. ``url`` null: env REDIS_URL, else an embedded server."""

    url: str | None = Field(None, description="redis:// or unix:// URL; null = auto")
    stream: str = Field("hallmonitor:events", min_length=1, max_length=200)
    heartbeat_stream: str = Field("hallmonitor:heartbeats", min_length=1)
    dead_letter_stream: str = Field("hallmonitor:dead", min_length=1)
    maxlen: int = Field(100_000, ge=100, le=100_000_000, description="Stream entries")
    group: str = Field("hallmonitor-api", min_length=1, max_length=200)
    spool_max_events: int = Field(
        10_000,
        ge=0,
        le=10_000_000,
        description="Events buffered on disk while Redis is unreachable",
    )


class StorageConfig(StrictModel):
    """Event database and media root."""

    url: str | None = Field(
        None,
        description="SQLAlchemy URL; null = env DATABASE_URL, else SQLite in data_dir",
    )
    media_dir: str | None = Field(None, description="Default: <data_dir>/media")
    retention_days: float = Field(30.0, gt=0, le=3650, description="Days")


class ApiConfig(StrictModel):
    """HTTP API."""

    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(8080, ge=1, le=65535)


class SupervisorConfig(StrictModel):
    """Worker restart policy."""

    max_restarts: int = Field(5, ge=0, le=1000, description="Restarts per window")
    restart_window_s: float = Field(300.0, gt=0, le=86400, description="Seconds")
    heartbeat_s: float = Field(2.0, gt=0, le=60, description="Seconds between beats")
    shutdown_timeout_s: float = Field(5.0, gt=0, le=60, description="Seconds")
    shared_detector: bool = Field(
        True,
        description="Run one detector process for all cameras (batched, frames via "
        "shared memory) instead of one ONNX session per worker",
    )


class AppConfig(StrictModel):
    """The whole deployment: one YAML file."""

    version: Literal[1] = 1
    site: str = Field("campus", max_length=200)
    data_dir: str = Field("var", description="Runtime data (relative: to the config)")
    secrets_file: str | None = Field(
        None, description="YAML file mapping secret names to {username, password}"
    )
    detector: DetectorConfig = DetectorConfig()
    tracker: TrackerConfig = TrackerConfig()
    redis: RedisConfig = RedisConfig()
    storage: StorageConfig = StorageConfig()
    api: ApiConfig = ApiConfig()
    supervisor: SupervisorConfig = SupervisorConfig()
    cameras: tuple[CameraConfig, ...] = Field(min_length=1, max_length=256)

    @model_validator(mode="after")
    def _unique_cameras(self) -> AppConfig:
        check_unique_ids("cameras", [c.id for c in self.cameras])
        self._check_rule_classes()
        return self

    def _check_rule_classes(self) -> None:
        """Rules may only ask for classes the detector keeps."""
        kept = set(self.detector.classes)
        for cam in self.cameras:
            r = cam.rules
            rules: list[
                LoiteringRuleConfig | CrowdingRuleConfig | VehicleFlowRuleConfig
            ] = [*r.loitering, *r.crowding, *r.vehicle_flow]
            for rule in rules:
                missing = [c for c in rule.classes if c not in kept]
                if missing:
                    raise ValueError(
                        f"camera {cam.id!r} rule {rule.id!r} needs class(es) {missing} "
                        f"that detector.classes drops"
                    )

    def camera(self, camera_id: str) -> CameraConfig:
        """The camera with ``camera_id`` (KeyError if absent)."""
        for c in self.cameras:
            if c.id == camera_id:
                return c
        raise KeyError(camera_id)
