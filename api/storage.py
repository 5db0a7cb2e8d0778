"""EventStore: the repository over the review database (SQLite or PostgreSQL).

Every write is one transaction. Events are applied idempotently: one row per event
UUID, later revisions replace the state, media references are merged.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import secrets
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from api.db import make_engine, redact_db_url, upgrade_head
from api.models import (
    AuditRow,
    EventRow,
    HeartbeatRow,
    MediaRow,
    ReviewRow,
    UserRow,
)
from monitor.events import CameraHeartbeat, Event

__all__ = [
    "ROLES",
    "REVIEW_ACTIONS",
    "EventFilter",
    "EventStore",
    "StoreError",
    "User",
    "hash_token",
    "resolve_media",
]

log = logging.getLogger(__name__)

ROLES = ("viewer", "officer", "admin")
REVIEW_ACTIONS = {
    "acknowledge": "acknowledged",
    "dismiss": "dismissed",
    "escalate": "escalated",
}
WEAK_TOKENS = {"changeme", "change-me", "password", "admin", "secret", "token", "test"}

_ev = cast(sa.Table, EventRow.__table__)
_media = cast(sa.Table, MediaRow.__table__)
_hb = cast(sa.Table, HeartbeatRow.__table__)
_users = cast(sa.Table, UserRow.__table__)
_reviews = cast(sa.Table, ReviewRow.__table__)
_audit = cast(sa.Table, AuditRow.__table__)


class StoreError(ValueError):
    """A request the store refuses (unknown role, weak token, bad cursor …)."""


def hash_token(token: str) -> str:
    """sha256 hex of a bearer token (only the hash is stored)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_token_strength(token: str) -> None:
    """Refuse obviously weak bootstrap tokens.

    Raises:
        StoreError: shorter than 16 characters, a well-known default, or one repeated
            character.
    """
    if len(token) < 16 or token.lower() in WEAK_TOKENS or len(set(token)) < 6:
        raise StoreError(
            "admin token is too weak: use at least 16 random characters "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )


def resolve_media(media_root: Path, rel: str) -> Path | None:
    """The file for a media row path, or None when it would leave ``media_root``."""
    root = media_root.resolve()
    p = (root / rel).resolve()
    return p if p.is_relative_to(root) and p != root else None


@dataclass(frozen=True)
class User:
    """An authenticated caller."""

    name: str
    role: str
    cameras: tuple[str, ...]  # ("*",) = every camera

    @property
    def all_cameras(self) -> bool:
        """True when the scope is ``*``."""
        return "*" in self.cameras

    def can_see(self, camera_id: str) -> bool:
        """Whether ``camera_id`` is inside this user's camera scope."""
        return self.all_cameras or camera_id in self.cameras


@dataclass
class EventFilter:
    """Filters of ``GET /api/events`` (all optional, combined with AND)."""

    camera_ids: Sequence[str] = ()
    kind: str | None = None
    state: str | None = None
    severity: str | None = None
    review_status: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    scope: Sequence[str] | None = None  # None = all cameras
    extra: dict[str, Any] = field(default_factory=dict)


def _encode_cursor(ts: dt.datetime, event_id: uuid.UUID) -> str:
    raw = json.dumps([ts.isoformat(), event_id.hex]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts_s, id_s = json.loads(raw)
        ts = dt.datetime.fromisoformat(ts_s)
        if ts.tzinfo is None:
            raise ValueError
        return ts, uuid.UUID(hex=id_s)
    except Exception:  # noqa: BLE001 - any garbage is "invalid cursor"
        raise StoreError("invalid cursor") from None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class EventStore:
    """Repository over the review database.

    Args:
        engine: A SQLAlchemy engine already migrated to head.
        media_root: Root of event media (needed by :meth:`purge` to delete files).
    """

    def __init__(self, engine: sa.Engine, media_root: Path | None = None) -> None:
        self.engine = engine
        self.media_root = media_root
        d = engine.dialect.name
        self._insert: Any
        if d == "sqlite":
            self._insert = sqlite.insert
        elif d == "postgresql":
            self._insert = postgresql.insert
        else:
            raise StoreError(f"unsupported database dialect {d!r}")

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        media_root: Path | None = None,
        busy_timeout_ms: int = 5000,
    ) -> EventStore:
        """Create the engine (SQLite: WAL, busy timeout, FKs) and upgrade to head."""
        engine = make_engine(url, busy_timeout_ms=busy_timeout_ms)
        upgrade_head(engine)
        return cls(engine, media_root)

    def __repr__(self) -> str:
        return f"EventStore({redact_db_url(self.engine.url)})"

    def close(self) -> None:
        """Dispose of the connection pool."""
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn:
            conn = conn.execution_options(hm_write=True)
            with conn.begin():
                yield conn

    def ping(self, write: bool = False) -> bool:
        """True when the database answers a trivial query.

        Args:
            write: Also require the write lock (SQLite: ``BEGIN IMMEDIATE``), so a
                database locked by another process counts as unavailable.
        """
        try:
            if write:
                with self._write() as conn:
                    conn.execute(sa.text("select 1"))
            else:
                with self.engine.connect() as conn:
                    conn.execute(sa.text("select 1"))
            return True
        except sa.exc.SQLAlchemyError:
            return False

    # ------------------------------------------------------------------ events
    def apply_event(self, event: Event) -> bool:
        """Apply one event message idempotently in one transaction.

        Returns:
            True if a row was inserted/updated or a media reference added.
        """
        return self.apply_events([event]) > 0

    def apply_events(self, events: Iterable[Event]) -> int:
        """Apply several event messages in ONE transaction (bulk statements).

        Rules: one row per ``event_id``; state/payload/ts/ended_at/severity are
        replaced only by a higher revision; media refs are merged per (event, role)
        regardless of revision.

        Returns:
            Number of events that changed anything.
        """
        evs = list(events)
        if len(evs) == 1:
            with self._write() as conn:
                return self._apply(conn, evs[0], _now())
        if not evs:
            return 0
        now = _now()
        # Highest revision per event wins inside the batch; media of all are merged.
        latest: dict[uuid.UUID, Event] = {}
        media: dict[tuple[uuid.UUID, str], dict[str, Any]] = {}
        for ev in evs:
            cur = latest.get(ev.event_id)
            if cur is None or ev.revision > cur.revision:
                latest[ev.event_id] = ev
            for m in ev.media:
                media.setdefault(
                    (ev.event_id, m.role), {"event_id": ev.event_id, **m.model_dump()}
                )
        ids = list(latest)
        changed: set[uuid.UUID] = set()
        with self._write() as conn:
            existing: dict[uuid.UUID, int] = {}
            have_media: set[tuple[uuid.UUID, str]] = set()
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                for r in conn.execute(
                    sa.select(_ev.c.id, _ev.c.revision).where(_ev.c.id.in_(chunk))
                ):
                    existing[r.id] = r.revision
                if media:
                    for r in conn.execute(
                        sa.select(_media.c.event_id, _media.c.role).where(
                            _media.c.event_id.in_(chunk)
                        )
                    ):
                        have_media.add((r.event_id, r.role))
            new_rows = [
                {
                    "id": ev.event_id,
                    "camera_id": ev.camera_id,
                    "kind": str(ev.kind),
                    "started_at": ev.started_at,
                    "review_status": "new",
                    "legal_hold": False,
                    "received_at": now,
                    **self._state(ev, now),
                }
                for eid, ev in latest.items()
                if eid not in existing
            ]
            if new_rows:
                conn.execute(
                    self._insert(_ev).on_conflict_do_nothing(index_elements=["id"]),
                    new_rows,
                )
                changed.update(r["id"] for r in new_rows)
            upd_rows = [
                {"b_id": eid, "b_rev": ev.revision, **self._state(ev, now)}
                for eid, ev in latest.items()
                if eid in existing and ev.revision > existing[eid]
            ]
            if upd_rows:
                stmt = (
                    sa.update(_ev)
                    .where(
                        _ev.c.id == sa.bindparam("b_id"),
                        _ev.c.revision < sa.bindparam("b_rev"),
                    )
                    .values(
                        {
                            k: sa.bindparam(k)
                            for k in upd_rows[0]
                            if not k.startswith("b_")
                        }
                    )
                )
                conn.execute(stmt, upd_rows)
                changed.update(r["b_id"] for r in upd_rows)
            new_media = [m for k, m in media.items() if k not in have_media]
            if new_media:
                conn.execute(
                    self._insert(_media).on_conflict_do_nothing(
                        index_elements=["event_id", "role"]
                    ),
                    new_media,
                )
                changed.update(m["event_id"] for m in new_media)
        return len(changed)

    @staticmethod
    def _state(ev: Event, now: dt.datetime) -> dict[str, Any]:
        return {
            "state": str(ev.state),
            "severity": str(ev.severity),
            "revision": ev.revision,
            "ts": ev.ts,
            "ended_at": ev.ended_at,
            "model_sha256": ev.model_sha256,
            "payload": ev.payload.model_dump(mode="json"),
            "updated_at": now,
        }

    def _apply(self, conn: sa.Connection, ev: Event, now: dt.datetime) -> int:
        state = self._state(ev, now)
        ins = (
            self._insert(_ev)
            .values(
                id=ev.event_id,
                camera_id=ev.camera_id,
                kind=str(ev.kind),
                started_at=ev.started_at,
                review_status="new",
                legal_hold=False,
                received_at=now,
                **state,
            )
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(_ev.c.id)
        )
        # RETURNING, not rowcount: psycopg reports -1 for some statements.
        did = conn.execute(ins).first() is not None
        if not did:
            # Only a newer revision may replace the stored state (redeliveries and
            # out-of-order messages leave it alone).
            upd = (
                sa.update(_ev)
                .where(_ev.c.id == ev.event_id, _ev.c.revision < ev.revision)
                .values(**state)
                .returning(_ev.c.id)
            )
            did = conn.execute(upd).first() is not None
        for m in ev.media:
            mi = (
                self._insert(_media)
                .values(
                    event_id=ev.event_id,
                    role=m.role,
                    path=m.path,
                    sha256=m.sha256,
                    bytes=m.bytes,
                    content_type=m.content_type,
                    duration_s=m.duration_s,
                )
                .on_conflict_do_nothing(index_elements=["event_id", "role"])
                .returning(_media.c.id)
            )
            did = conn.execute(mi).first() is not None or did
        return int(did)

    def upsert_heartbeat(self, hb: CameraHeartbeat) -> None:
        """Keep the newest heartbeat per camera (older ones are ignored)."""
        self.apply_heartbeats([hb])

    def apply_heartbeats(self, hbs: Iterable[CameraHeartbeat]) -> None:
        """Upsert several heartbeats in one transaction."""
        now = _now()
        with self._write() as conn:
            for hb in hbs:
                vals = {
                    "state": str(hb.state),
                    "ts": hb.ts,
                    "data": hb.model_dump(mode="json"),
                    "received_at": now,
                }
                ins = self._insert(_hb).values(camera_id=hb.camera_id, **vals)
                ins = ins.on_conflict_do_update(
                    index_elements=["camera_id"],
                    set_=vals,
                    where=_hb.c.ts <= ins.excluded.ts,
                )
                conn.execute(ins)

    def count_events(self) -> int:
        """Number of event rows."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(_ev)).scalar_one()
            )

    def list_events(
        self,
        flt: EventFilter,
        *,
        limit: int = 50,
        cursor: str | None = None,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Events matching ``flt`` ordered by ``ts`` desc, ``id``.

        Returns:
            (rows, next_cursor) — next_cursor is None on the last page.
        """
        q = sa.select(_ev)
        if flt.scope is not None:
            q = q.where(_ev.c.camera_id.in_(list(flt.scope)))
        if flt.camera_ids:
            q = q.where(_ev.c.camera_id.in_(list(flt.camera_ids)))
        for col, val in (
            (_ev.c.kind, flt.kind),
            (_ev.c.state, flt.state),
            (_ev.c.severity, flt.severity),
            (_ev.c.review_status, flt.review_status),
        ):
            if val is not None:
                q = q.where(col == val)
        if flt.since is not None:
            q = q.where(_ev.c.ts >= flt.since)
        if flt.until is not None:
            q = q.where(_ev.c.ts < flt.until)
        if cursor:
            cts, cid = _decode_cursor(cursor)
            q = q.where(
                sa.or_(_ev.c.ts < cts, sa.and_(_ev.c.ts == cts, _ev.c.id > cid))
            )
        q = q.order_by(_ev.c.ts.desc(), _ev.c.id.asc()).limit(limit + 1)
        if offset and not cursor:
            q = q.offset(offset)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
        nxt = None
        if len(rows) > limit:
            rows = rows[:limit]
            nxt = _encode_cursor(rows[-1]["ts"], rows[-1]["id"])
        return rows, nxt

    def get_event(self, event_id: uuid.UUID) -> dict[str, Any] | None:
        """One event row with its ``media`` list, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_ev).where(_ev.c.id == event_id)).first()
            if row is None:
                return None
            out = dict(row._mapping)
            media = conn.execute(
                sa.select(_media)
                .where(_media.c.event_id == event_id)
                .order_by(_media.c.role)
            )
            out["media"] = [dict(m._mapping) for m in media]
        return out

    def get_media(self, event_id: uuid.UUID, role: str) -> dict[str, Any] | None:
        """The media row of ``role`` for an event, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(_media).where(
                    _media.c.event_id == event_id, _media.c.role == role
                )
            ).first()
        return None if row is None else dict(row._mapping)

    def add_review(
        self, event_id: uuid.UUID, user: str, action: str, note: str = ""
    ) -> dict[str, Any] | None:
        """Record a review decision and set the event's review status.

        Returns:
            The review row, or None when the event does not exist.
        """
        if action not in REVIEW_ACTIONS:
            raise StoreError(f"unknown review action {action!r}")
        now = _now()
        with self._write() as conn:
            n = conn.execute(
                sa.update(_ev)
                .where(_ev.c.id == event_id)
                .values(review_status=REVIEW_ACTIONS[action])
                .returning(_ev.c.id)
            ).first()
            if n is None:
                return None
            vals = {
                "event_id": event_id,
                "user_name": user,
                "action": action,
                "note": note,
                "created_at": now,
            }
            rid = conn.execute(sa.insert(_reviews).values(**vals)).inserted_primary_key
        return {"id": rid[0] if rid else None, **vals}

    def reviews(self, event_id: uuid.UUID) -> list[dict[str, Any]]:
        """Review history of an event, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(_reviews)
                .where(_reviews.c.event_id == event_id)
                .order_by(_reviews.c.created_at, _reviews.c.id)
            )
            return [dict(r._mapping) for r in rows]

    def set_hold(self, event_id: uuid.UUID, hold: bool) -> bool:
        """Set/clear legal hold; False when the event does not exist."""
        with self._write() as conn:
            upd = sa.update(_ev).where(_ev.c.id == event_id).values(legal_hold=hold)
            return conn.execute(upd.returning(_ev.c.id)).first() is not None

    def heartbeats(self, scope: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Latest heartbeat per camera (within ``scope`` when given)."""
        q = sa.select(_hb).order_by(_hb.c.camera_id)
        if scope is not None:
            q = q.where(_hb.c.camera_id.in_(list(scope)))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def flow_payloads(
        self,
        camera_ids: Sequence[str] | None,
        since: dt.datetime,
        until: dt.datetime,
    ) -> list[tuple[str, dict[str, Any]]]:
        """(camera_id, payload) of vehicle_flow events that may overlap the window.

        Each row already holds the latest revision of its event.
        """
        q = sa.select(_ev.c.camera_id, _ev.c.payload).where(
            _ev.c.kind == "vehicle_flow",
            _ev.c.started_at < until,
            _ev.c.ts >= since,
        )
        if camera_ids is not None:
            q = q.where(_ev.c.camera_id.in_(list(camera_ids)))
        with self.engine.connect() as conn:
            return [(r.camera_id, r.payload) for r in conn.execute(q)]

    def purge(self, older_than: dt.datetime) -> tuple[int, int]:
        """Delete events (and their media files) with ``ts`` before ``older_than``.

        Events on legal hold are kept. Rows go first (one transaction); files are
        unlinked after the commit, so a crash leaves at worst an orphan file, never
        a row pointing at a missing file.

        Returns:
            (events deleted, files deleted).
        """
        with self._write() as conn:
            sel = sa.select(_ev.c.id).where(
                _ev.c.ts < older_than, _ev.c.legal_hold.is_(False)
            )
            ids = [r.id for r in conn.execute(sel)]
            paths: list[str] = []
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                paths += [
                    r.path
                    for r in conn.execute(
                        sa.select(_media.c.path).where(_media.c.event_id.in_(chunk))
                    )
                ]
                conn.execute(sa.delete(_media).where(_media.c.event_id.in_(chunk)))
                conn.execute(sa.delete(_reviews).where(_reviews.c.event_id.in_(chunk)))
                conn.execute(sa.delete(_ev).where(_ev.c.id.in_(chunk)))
        files = 0
        if self.media_root is not None:
            for rel in paths:
                p = resolve_media(self.media_root, rel)
                if p is None:
                    log.warning("media path outside the media root skipped")
                    continue
                try:
                    p.unlink()
                    files += 1
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    log.warning("could not delete media file %s: %s", rel, exc.strerror)
        if ids:
            log.info("retention: deleted %d events, %d files", len(ids), files)
        return len(ids), files

    # ------------------------------------------------------------ users, audit
    def create_user(self, name: str, role: str, cameras: Sequence[str]) -> str:
        """Create a user and return its new bearer token (only the hash is kept).

        Raises:
            StoreError: unknown role, empty name/scope, or the name exists.
        """
        if role not in ROLES:
            raise StoreError(
                f"unknown role {role!r}: expected one of {', '.join(ROLES)}"
            )
        if not name or len(name) > 100:
            raise StoreError("user name must be 1-100 characters")
        cams = list(dict.fromkeys(cameras))
        if not cams:
            raise StoreError("camera scope must list camera ids or '*'")
        token = secrets.token_urlsafe(32)
        try:
            with self._write() as conn:
                conn.execute(
                    sa.insert(_users).values(
                        name=name,
                        role=role,
                        cameras=cams,
                        token_hash=hash_token(token),
                        disabled=False,
                        created_at=_now(),
                    )
                )
        except sa.exc.IntegrityError:
            raise StoreError(f"user {name!r} already exists") from None
        return token

    def ensure_admin_token(self, token: str, name: str = "admin") -> None:
        """Create or re-key the bootstrap admin user with ``token``.

        Raises:
            StoreError: the token is weak.
        """
        check_token_strength(token)
        h = hash_token(token)
        with self._write() as conn:
            ins = self._insert(_users).values(
                name=name,
                role="admin",
                cameras=["*"],
                token_hash=h,
                disabled=False,
                created_at=_now(),
            )
            conn.execute(
                ins.on_conflict_do_update(
                    index_elements=["name"],
                    set_={
                        "token_hash": h,
                        "role": "admin",
                        "cameras": ["*"],
                        "disabled": False,
                    },
                )
            )

    def user_for_token(self, token: str) -> User | None:
        """The enabled user owning ``token``, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(_users).where(_users.c.token_hash == hash_token(token))
            ).first()
        if row is None or row.disabled:
            return None
        return User(row.name, row.role, tuple(row.cameras))

    def audit(
        self,
        user: str,
        action: str,
        object_type: str,
        object_id: str,
        camera_id: str | None = None,
    ) -> None:
        """Append one audit row."""
        with self._write() as conn:
            conn.execute(
                sa.insert(_audit).values(
                    user_name=user,
                    action=action,
                    object_type=object_type,
                    object_id=object_id[:100],
                    camera_id=camera_id,
                    at=_now(),
                )
            )

    def list_audit(
        self, *, user: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Audit rows, newest first."""
        q = sa.select(_audit).order_by(_audit.c.at.desc(), _audit.c.id.desc())
        if user:
            q = q.where(_audit.c.user_name == user)
        with self.engine.connect() as conn:
            return [
                dict(r._mapping) for r in conn.execute(q.limit(limit).offset(offset))
            ]
