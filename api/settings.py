"""API settings (environment ``HALLMONITOR_*`` or explicit)."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ApiSettings"]


class ApiSettings(BaseModel):
    """Knobs of the review API."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    heartbeat_interval_s: float = Field(
        2.0, gt=0, description="Seconds between worker heartbeats; > 3x = offline"
    )
    retention_days: float = Field(30.0, gt=0, description="Days events are kept")
    retention_interval_s: float = Field(
        3600.0, ge=0, description="Seconds between retention runs; 0 = never"
    )
    dead_letter_stream: str = Field("hallmonitor:dead", min_length=1)
    admin_token_env: str = "HALLMONITOR_ADMIN_TOKEN"

    @classmethod
    def from_env(cls) -> ApiSettings:
        """Settings from ``HALLMONITOR_RETENTION_DAYS`` etc. (defaults otherwise)."""
        kw: dict[str, object] = {}
        for name in ("heartbeat_interval_s", "retention_days", "retention_interval_s"):
            v = os.environ.get(f"HALLMONITOR_{name.upper()}")
            if v:
                kw[name] = float(v)
        if v := os.environ.get("HALLMONITOR_DEAD_LETTER_STREAM"):
            kw["dead_letter_stream"] = v
        return cls.model_validate(kw)
