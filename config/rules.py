"""Rule configuration for pipelines/ (loitering, crowding, vehicle flow, occupancy)."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator, model_validator

from config.base import COCO_CLASSES, Identifier, StrictModel
from monitor.events import Severity
from monitor.types import Anchor

__all__ = [
    "Severity",
    "Weekday",
    "ScheduleConfig",
    "LoiteringRuleConfig",
    "CrowdingRuleConfig",
    "VehicleFlowRuleConfig",
    "OccupancyRuleConfig",
    "RulesConfig",
]


class Weekday(StrEnum):
    """Day names used by schedules."""

    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


ALL_DAYS = tuple(Weekday)


def _check_classes(v: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [c for c in v if c not in COCO_CLASSES]
    if unknown:
        raise ValueError(f"unknown class name(s) {unknown}; use COCO names")
    if len(set(v)) != len(v):
        raise ValueError("duplicate class names")
    return v


class ScheduleConfig(StrictModel):
    """A time window (camera-local time) with its own thresholds.

    ``start`` > ``end`` means the window runs across midnight (e.g. 18:00-06:00); the
    day list names the day the window *starts* on.
    """

    name: Identifier
    days: tuple[Weekday, ...] = Field(ALL_DAYS, min_length=1, description="Start days")
    start: dt.time = Field(description="Local start time, HH:MM")
    end: dt.time = Field(description="Local end time, HH:MM (exclusive)")
    min_dwell_s: float | None = Field(
        None, gt=0, le=86400, description="Seconds; overrides the rule's min_dwell_s"
    )
    min_count: int | None = Field(
        None,
        ge=2,
        le=1000,
        description="Objects; crowding rules only: overrides the rule's min_count "
        "(e.g. 2 people after hours, 15 in the lunch break)",
    )
    grace_s: float | None = Field(
        None,
        ge=0,
        le=600,
        description="Seconds; overrides the rule's grace_s (loitering, crowding; "
        "e.g. longer at night, when detections flicker in poor light)",
    )
    severity: Severity | None = Field(None, description="Overrides the rule's severity")
    enabled: bool = Field(True, description="false: the rule is off in this window")

    @model_validator(mode="after")
    def _nonempty(self) -> ScheduleConfig:
        if self.start == self.end:
            raise ValueError("schedule start and end are equal (empty window)")
        return self


class LoiteringRuleConfig(StrictModel):
    """Dwell-time rule over one zone."""

    id: Identifier
    zone: Identifier = Field(description="Zone id on the same camera")
    classes: tuple[str, ...] = Field(("person",), min_length=1)
    anchor: Anchor = Field(Anchor.BOTTOM_CENTER, description="Box point tested in zone")
    min_dwell_s: float = Field(60.0, gt=0, le=86400, description="Seconds in zone")
    entry_s: float = Field(
        1.0,
        ge=0,
        le=600,
        description="Seconds of continuous presence before dwell "
        "counts (suppresses flicker)",
    )
    grace_s: float = Field(
        3.0,
        ge=0,
        le=600,
        description="Seconds out of zone/unseen tolerated without ending the visit",
    )
    update_s: float = Field(
        30.0, gt=0, le=86400, description="Seconds between update events"
    )
    cooldown_s: float = Field(
        60.0,
        ge=0,
        le=86400,
        description="Seconds after an end before the same track may raise again",
    )
    reid_distance: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Fraction of the frame diagonal within which a "
        "new track continues a vanished loiterer's dwell (0 disables)",
    )
    severity: Severity = Severity.MEDIUM
    schedules: tuple[ScheduleConfig, ...] = ()

    _classes = field_validator("classes")(classmethod(lambda cls, v: _check_classes(v)))

    @field_validator("schedules")
    @classmethod
    def _no_count(cls, v: tuple[ScheduleConfig, ...]) -> tuple[ScheduleConfig, ...]:
        named = [s.name for s in v if s.min_count is not None]
        if named:
            raise ValueError(
                f"schedule(s) {named} set min_count, which only crowding rules have "
                "(a loitering rule's threshold is min_dwell_s)"
            )
        return v


class CrowdingRuleConfig(StrictModel):
    """N or more objects in a zone for T seconds raise one crowding event."""

    id: Identifier
    zone: Identifier
    classes: tuple[str, ...] = Field(("person",), min_length=1)
    anchor: Anchor = Anchor.BOTTOM_CENTER
    min_count: int = Field(5, ge=2, le=1000, description="Objects")
    min_duration_s: float = Field(10.0, gt=0, le=86400, description="Seconds")
    grace_s: float = Field(
        3.0, ge=0, le=600, description="Seconds below count tolerated"
    )
    update_s: float = Field(
        30.0,
        gt=0,
        le=86400,
        description="Seconds between update events (also sent when the group grows)",
    )
    severity: Severity = Severity.MEDIUM
    schedules: tuple[ScheduleConfig, ...] = ()

    _classes = field_validator("classes")(classmethod(lambda cls, v: _check_classes(v)))


class VehicleFlowRuleConfig(StrictModel):
    """Count crossings of one line per class and direction in time buckets."""

    id: Identifier
    line: Identifier = Field(description="Line id on the same camera")
    classes: tuple[str, ...] = Field(
        ("car", "bus", "truck", "motorcycle", "bicycle", "person"), min_length=1
    )
    anchor: Anchor = Anchor.BOTTOM_CENTER
    bucket_s: int = Field(
        900, ge=10, le=86400, description="Seconds per count bucket (aligned to epoch)"
    )
    hysteresis: float = Field(
        0.01,
        ge=0,
        le=0.5,
        description="Fraction of the frame diagonal the anchor must "
        "pass beyond the line before a crossing counts",
    )
    one_way: Literal["in", "out"] | None = Field(
        None, description="Allowed direction; crossing the other way raises wrong_way"
    )
    wrong_way_classes: tuple[str, ...] = Field(
        ("car", "bus", "truck", "motorcycle"),
        description="Classes checked for wrong_way",
    )
    switch_window_s: float = Field(
        2.0,
        ge=0,
        le=60,
        description="Seconds within which a new track crossing near a "
        "just-counted one is treated as an id switch (no second count)",
    )

    _classes = field_validator("classes", "wrong_way_classes")(
        classmethod(lambda cls, v: _check_classes(v))
    )


class OccupancyRuleConfig(StrictModel):
    """Lot occupancy (in - out) from entrance lines, never negative."""

    id: Identifier
    lines: tuple[Identifier, ...] = Field(
        min_length=1, description="vehicle_flow rule ids"
    )
    classes: tuple[str, ...] = Field(
        ("car", "bus", "truck", "motorcycle"), min_length=1
    )
    reset_time: dt.time = Field(dt.time(3, 0), description="Daily local reset, HH:MM")

    _classes = field_validator("classes")(classmethod(lambda cls, v: _check_classes(v)))


class RulesConfig(StrictModel):
    """All rules of one camera."""

    loitering: tuple[LoiteringRuleConfig, ...] = ()
    crowding: tuple[CrowdingRuleConfig, ...] = ()
    vehicle_flow: tuple[VehicleFlowRuleConfig, ...] = ()
    occupancy: tuple[OccupancyRuleConfig, ...] = ()
