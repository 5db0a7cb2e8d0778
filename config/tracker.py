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
        0.6,
        title="New track score",
        description="Minimum score to start a track (0-1)",
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
    lost_buffer_s: float = Field(
        1.5,
        title="Lost buffer",
        description="Seconds a lost track is kept for re-association before removal",
        gt=0.0,
        le=600.0,
    )

    @model_validator(mode="after")
    def _ordered(self) -> TrackerConfig:
        if self.low_threshold > self.high_threshold:
            raise ValueError(
                f"low_threshold ({self.low_threshold}) must be <= high_threshold "
                f"({self.high_threshold})"
            )
        return self
