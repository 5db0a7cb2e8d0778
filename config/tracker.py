"""Tracker configuration (owned with monitor/tracker.py). Buffers are in seconds."""

from __future__ import annotations

from pydantic import Field, model_validator

from config.base import StrictModel

__all__ = ["TrackerConfig"]


class TrackerConfig(StrictModel):
    """ByteTrack-style tracker parameters."""

    high_threshold: float = Field(
        0.5,
        title="High score",
        description="Detections at/above this score are associated first (0-1)",
        ge=0.0,
        le=1.0,
    )
    low_threshold: float = Field(
        0.1,
        title="Low score",
        description="Detections between low and high are used "
        "in the second association stage (0-1)",
        ge=0.0,
        le=1.0,
    )
    new_track_threshold: float = Field(
        0.5,
        title="New track score",
        description="Minimum score to start a track (0-1). 0.5 since #5/#8 (was "
        "0.6): at 5 detections/s a vehicle scored 0.5-0.6 by an int8 model got too "
        "few chances to start a track before it crossed a line",
        ge=0.0,
        le=1.0,
    )
    match_iou: float = Field(
        0.2,
        title="Match IoU",
        description="Minimum IoU for an association (0-1)",
        ge=0.0,
        le=1.0,
    )
    min_confirm_hits: int = Field(
        2,
        title="Hits to confirm",
        description="Matched detections before a track is "
        "confirmed and gets a public id",
        ge=1,
        le=100,
    )
    max_speed: float = Field(
        4.0,
        title="Max speed of new tracks",
        description="Box sizes per second. A track with one detection has no "
        "velocity yet, so besides IoU >= match_iou it also matches a detection of "
        "its class group and similar size whose centre is within max_speed x "
        "(seconds since its detection) box sizes: at 5 detections/s a fast car no "
        "longer overlaps its first box. 0: IoU only",
        ge=0.0,
        le=100.0,
    )
    class_groups: tuple[tuple[str, ...], ...] = Field(
        (("car", "bus", "truck"),),
        title="Class groups",
        description="Detector class names a track may switch between (detectors "
        "flip one vehicle between car, bus and truck from frame to frame); a class "
        "in no group only continues as itself, so a person never continues as a "
        "car. Names the detector does not have are ignored",
    )
    confirm_on_start: bool = Field(
        False,
        title="Confirm on start",
        description="Confirm tracks born on the tracker's first detection step (start, "
        "restart) at once, as ByteTrack does. Off: on the MOT benchmark it confirms "
        "clutter and adds false line counts (easy 2.2 % -> 6.7 % count error); its only "
        "gain measured was one vehicle already on a line when a 5/s replay starts",
    )
    lost_buffer_s: float = Field(
        1.5,
        title="Lost buffer",
        description="Seconds a lost track is kept for re-association before removal",
        gt=0.0,
        le=600.0,
    )

    @model_validator(mode="after")
    def _ordered(self) -> TrackerConfig:
        seen: set[str] = set()
        for g in self.class_groups:
            twice = seen.intersection(g)
            if twice:
                raise ValueError(
                    f"class_groups: {sorted(twice)} in more than one group"
                )
            seen.update(g)
        if self.low_threshold > self.high_threshold:
            raise ValueError(
                f"low_threshold ({self.low_threshold}) must be <= high_threshold "
                f"({self.high_threshold})"
            )
        return self
