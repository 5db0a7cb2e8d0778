"""SQLAlchemy 2 typed ORM models of the review database.

Timestamps are stored as UTC. SQLite has no time zone type, so :class:`UTCDateTime`
writes naive UTC there and re-attaches UTC on read; PostgreSQL uses ``timestamptz``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AuditRow",
    "Base",
    "EventRow",
    "HeartbeatRow",
    "MediaRow",
    "ReviewRow",
    "UTCDateTime",
    "UserRow",
]


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in Python, comparable columns in every dialect."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        # SQLite compares the stored text: keep one format (naive UTC) everywhere.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base of all tables."""


class EventRow(Base):
    """One row per event UUID, holding the latest revision's state."""

    __tablename__ = "events"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid(), primary_key=True)
    camera_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    kind: Mapped[str] = mapped_column(sa.String(32), index=True)
    state: Mapped[str] = mapped_column(sa.String(16))
    severity: Mapped[str] = mapped_column(sa.String(16))
    revision: Mapped[int] = mapped_column(sa.Integer)
    ts: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    model_sha256: Mapped[str] = mapped_column(sa.String(64), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON())
    review_status: Mapped[str] = mapped_column(sa.String(16), default="new")
    legal_hold: Mapped[bool] = mapped_column(sa.Boolean(), default=False)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    __table_args__ = (sa.Index("ix_events_ts_id", "ts", "id"),)


class MediaRow(Base):
    """A file under the media root belonging to an event (one per role)."""

    __tablename__ = "media"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid(), sa.ForeignKey("events.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(sa.String(32))
    path: Mapped[str] = mapped_column(sa.String(200))
    sha256: Mapped[str] = mapped_column(sa.String(64))
    bytes: Mapped[int] = mapped_column(sa.BigInteger)
    content_type: Mapped[str] = mapped_column(sa.String(32))
    duration_s: Mapped[float | None] = mapped_column(sa.Float, nullable=True)

    __table_args__ = (sa.UniqueConstraint("event_id", "role", name="uq_media_role"),)


class HeartbeatRow(Base):
    """Latest heartbeat per camera."""

    __tablename__ = "heartbeats"

    camera_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    state: Mapped[str] = mapped_column(sa.String(16))
    ts: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON())
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class UserRow(Base):
    """An API user: role, camera scope and the sha256 of its bearer token."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    role: Mapped[str] = mapped_column(sa.String(16))
    cameras: Mapped[list[str]] = mapped_column(sa.JSON())
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    disabled: Mapped[bool] = mapped_column(sa.Boolean(), default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ReviewRow(Base):
    """One review decision by one user on one event."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid(), sa.ForeignKey("events.id", ondelete="CASCADE"), index=True
    )
    user_name: Mapped[str] = mapped_column(sa.String(100))
    action: Mapped[str] = mapped_column(sa.String(16))
    note: Mapped[str] = mapped_column(sa.Text(), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class AuditRow(Base):
    """Who looked at / changed / exported what, and when (never purged with events)."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    user_name: Mapped[str] = mapped_column(sa.String(100), index=True)
    action: Mapped[str] = mapped_column(sa.String(32))
    object_type: Mapped[str] = mapped_column(sa.String(32))
    object_id: Mapped[str] = mapped_column(sa.String(100))
    camera_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
