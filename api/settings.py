"""API settings (environment ``HALLMONITOR_*`` or explicit)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from config.schema import AppConfig

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

    @classmethod
    def from_config(cls, cfg: AppConfig) -> ApiSettings:
        """Settings from the deployment YAML (retention, heartbeat, dead letters)."""
        return cls(
            heartbeat_interval_s=cfg.supervisor.heartbeat_s,
            retention_days=cfg.storage.retention_days,
            dead_letter_stream=cfg.redis.dead_letter_stream,
        )

    def consumer_kwargs(self, cfg: AppConfig) -> dict[str, str]:
        """``EventConsumer`` stream/group keyword arguments from the YAML."""
        return {
            "stream": cfg.redis.stream,
            "group": cfg.redis.group,
            "heartbeat_stream": cfg.redis.heartbeat_stream,
            "dead_letter_stream": cfg.redis.dead_letter_stream,
        }
