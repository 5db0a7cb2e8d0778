"""EventStore on SQLite and PostgreSQL: idempotent apply, users, purge, migrations."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from api.storage import EventFilter, EventStore, StoreError
from monitor.events import CameraHeartbeat
from tests.api.conftest import T0, loiter

pytestmark = pytest.mark.integration

# (revision, state, dwell) messages of ONE event in arrival order, and after each
# message: (changed?, stored revision, stored state)
SEQUENCES = {
    "in_order": [
        ((0, "start", 3.0), (True, 0, "start")),
        ((1, "update", 6.0), (True, 1, "update")),
        ((2, "end", 9.0), (True, 2, "end")),
    ],
    "redelivered": [
        ((0, "start", 3.0), (True, 0, "start")),
        ((0, "start", 3.0), (False, 0, "start")),
        ((1, "end", 4.0), (True, 1, "end")),
        ((1, "end", 4.0), (False, 1, "end")),
    ],
    "out_of_order": [
        ((2, "end", 9.0), (True, 2, "end")),
        ((0, "start", 3.0), (False, 2, "end")),
        ((1, "update", 6.0), (False, 2, "end")),
    ],
}


@pytest.mark.parametrize("seq", list(SEQUENCES))
def test_apply_event_idempotent_by_revision(store: EventStore, seq: str) -> None:
    eid = uuid.uuid4()
    for (rev, state, dwell), (changed, want_rev, want_state) in SEQUENCES[seq]:
        ev = loiter(
            event_id=eid,
            revision=rev,
            state=state,
            dwell_s=dwell,
            ts=T0 + dt.timedelta(seconds=rev),
        )
        assert store.apply_event(ev) is changed
        row = store.get_event(eid)
        assert row is not None
        assert (row["revision"], row["state"]) == (want_rev, want_state)
    assert store.count_events() == 1


def test_batch_apply_matches_single(store: EventStore) -> None:
    """A batch holding several revisions of one event keeps the highest."""
    a, b = uuid.uuid4(), uuid.uuid4()
    batch = [
        loiter(event_id=a, revision=0),
        loiter(event_id=a, revision=3, state="end", dwell_s=30),
        loiter(event_id=a, revision=1, state="update"),
        loiter(event_id=b, revision=0),
    ]
    assert store.apply_events(batch) == 2
    assert store.apply_events(batch) == 0  # full redelivery changes nothing
    row = store.get_event(a)
    assert row and row["revision"] == 3 and row["payload"]["dwell_s"] == 30
    assert store.apply_events([loiter(event_id=b, revision=2, state="end")]) == 1
    assert store.get_event(b)["state"] == "end"  # type: ignore[index]


def test_media_merged_regardless_of_revision(store: EventStore, write_media) -> None:
    eid = uuid.uuid4()
    snap = write_media("cam-a", eid, "snapshot", b"\xff\xd8jpeg")
    clip = write_media("cam-a", eid, "clip", b"mp4" * 100)
    assert store.apply_event(
        loiter(event_id=eid, revision=2, state="end", media=(snap,))
    )
    # The clip arrives later as a re-send of the same revision.
    assert store.apply_event(
        loiter(event_id=eid, revision=2, state="end", media=(clip,))
    )
    assert not store.apply_event(
        loiter(event_id=eid, revision=2, state="end", media=(clip,))
    )
    # ... and an older revision with media must not roll the state back.
    store.apply_events([loiter(event_id=eid, revision=0, media=(snap,)), loiter()])
    row = store.get_event(eid)
    assert row and row["state"] == "end"
    assert sorted(m["role"] for m in row["media"]) == ["clip", "snapshot"]
    assert {m["sha256"] for m in row["media"]} == {snap.sha256, clip.sha256}


def test_heartbeat_newest_wins(store: EventStore) -> None:
    def hb(sec: int, state: str) -> CameraHeartbeat:
        return CameraHeartbeat(
            camera_id="cam-a", state=state, ts=T0 + dt.timedelta(seconds=sec)
        )

    store.upsert_heartbeat(hb(10, "online"))
    store.upsert_heartbeat(hb(5, "failed"))  # late, older: ignored
    assert [h["state"] for h in store.heartbeats()] == ["online"]
    store.upsert_heartbeat(hb(20, "offline"))
    assert [(h["state"], h["ts"]) for h in store.heartbeats()] == [
        ("offline", T0 + dt.timedelta(seconds=20))
    ]


def test_cursor_pagination_is_stable_and_complete(store: EventStore) -> None:
    # Ties on ts make the id the tie-breaker.
    evs = [loiter(ts=T0 + dt.timedelta(seconds=i // 3)) for i in range(23)]
    store.apply_events(evs)
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        rows, cursor = store.list_events(EventFilter(), limit=5, cursor=cursor)
        seen += [r["id"] for r in rows]
        if cursor is None:
            break
    assert len(seen) == 23 and set(seen) == {e.event_id for e in evs}
    key = {e.event_id: e.ts for e in evs}
    assert seen == sorted(seen, key=lambda i: (-key[i].timestamp(), i))
    with pytest.raises(StoreError, match="invalid cursor"):
        store.list_events(EventFilter(), cursor="'; drop table events; --")


def test_filters_and_scope(store: EventStore) -> None:
    store.apply_events([
        loiter(camera_id="cam-a", severity="high"),
        loiter(camera_id="cam-b", ts=T0 + dt.timedelta(hours=1)),
        loiter(camera_id="cam-c", ts=T0 + dt.timedelta(hours=2)),
    ])  # fmt: skip
    cams = lambda f: sorted(r["camera_id"] for r in store.list_events(f)[0])  # noqa: E731
    assert cams(EventFilter(scope=["cam-a", "cam-b"])) == ["cam-a", "cam-b"]
    assert cams(EventFilter(scope=["cam-a"], camera_ids=["cam-b"])) == []
    assert cams(EventFilter(severity="high")) == ["cam-a"]
    assert cams(EventFilter(since=T0 + dt.timedelta(minutes=30))) == ["cam-b", "cam-c"]
    assert cams(EventFilter(until=T0 + dt.timedelta(hours=2))) == ["cam-a", "cam-b"]


def test_purge_keeps_legal_hold_and_deletes_files(
    store: EventStore, write_media, tmp_path: Path
) -> None:
    old, held, new = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    files = {}
    for eid, ts in ((old, T0), (held, T0), (new, T0 + dt.timedelta(days=40))):
        m = write_media("cam-a", eid, "snapshot", b"jpg" + eid.bytes)
        files[eid] = tmp_path / "media" / m.path
        store.apply_event(loiter(event_id=eid, ts=ts, media=(m,)))
    store.add_review(old, "officer1", "dismiss", "nothing")
    assert store.set_hold(held, True)
    assert not store.set_hold(uuid.uuid4(), True)
    assert store.purge(T0 + dt.timedelta(days=10)) == (1, 1)
    assert store.get_event(old) is None and not files[old].exists()
    assert store.get_event(held) and files[held].exists()
    assert store.get_event(new) and files[new].exists()
    assert store.reviews(old) == []
    assert store.purge(T0 + dt.timedelta(days=10)) == (0, 0)


def test_users_tokens_and_roles(store: EventStore) -> None:
    tok = store.create_user("ofc", "officer", ["cam-a", "cam-b"])
    u = store.user_for_token(tok)
    assert u and u.role == "officer" and u.can_see("cam-a") and not u.can_see("cam-c")
    assert store.user_for_token(tok + "x") is None
    with pytest.raises(StoreError, match="already exists"):
        store.create_user("ofc", "viewer", ["*"])
    with pytest.raises(StoreError, match="unknown role"):
        store.create_user("x", "root", ["*"])
    # only the hash is stored
    with store.engine.connect() as c:
        hashes = [r[0] for r in c.execute(sa.text("select token_hash from users"))]
    assert tok not in hashes and len(hashes) == 1


@pytest.mark.parametrize(
    "token", ["changeme", "CHANGEME", "short", "aaaaaaaaaaaaaaaaaaaa", "password"]
)
def test_weak_admin_token_refused(sqlite_store: EventStore, token: str) -> None:
    with pytest.raises(StoreError, match="too weak"):
        sqlite_store.ensure_admin_token(token)


def test_admin_token_rekeys(sqlite_store: EventStore) -> None:
    sqlite_store.ensure_admin_token("x" * 10 + "abcdefgh12")
    sqlite_store.ensure_admin_token("Q7v9-long-random-token")
    assert sqlite_store.user_for_token("x" * 10 + "abcdefgh12") is None
    u = sqlite_store.user_for_token("Q7v9-long-random-token")
    assert u and u.role == "admin" and u.all_cameras


def test_sqlite_wal_and_migrated_to_head(
    sqlite_store: EventStore, tmp_path: Path
) -> None:
    with sqlite_store.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert (
            c.exec_driver_sql("select version_num from alembic_version").scalar()
            == "0001"
        )
    # Re-opening runs upgrade head again without touching the data.
    sqlite_store.apply_event(loiter())
    again = EventStore.from_url(f"sqlite:///{tmp_path / 'events.db'}")
    assert again.count_events() == 1
    again.close()


def test_repr_hides_password() -> None:
    s = EventStore(sa.create_engine("sqlite://"))
    assert "sqlite" in repr(s)
    from api.db import redact_db_url

    assert "hunter2" not in redact_db_url("postgresql+psycopg://u:hunter2@h/db")


def test_migrations_match_orm_models(store: EventStore) -> None:
    """The hand-written migration creates exactly what the ORM declares."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from api.models import Base

    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []
