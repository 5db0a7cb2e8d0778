"""EventConsumer against real Redis and a real SQLite store."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from api.consumer import EventConsumer
from api.storage import EventStore
from monitor.events import CameraHeartbeat, encode_event, encode_heartbeat
from tests.api.conftest import loiter, pg_store  # noqa: F401 - fixture

__all__ = ["pg_store"]

pytestmark = pytest.mark.integration


@pytest.fixture
def r(redis_url: str, unique: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    for k in client.scan_iter(f"t:{unique}:*"):
        client.delete(k)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    s = EventStore.from_url(f"sqlite:///{tmp_path / 'ev.db'}", busy_timeout_ms=200)
    yield s
    s.close()


def make(
    r: redis.Redis, store: EventStore, unique: str, name: str = "c1", **kw
) -> EventConsumer:
    c = EventConsumer(
        r,
        store,
        stream=f"t:{unique}:events",
        group="g",
        consumer=name,
        heartbeat_stream=f"t:{unique}:hb",
        dead_letter_stream=f"t:{unique}:dead",
        **kw,
    )
    c.ensure_groups()
    return c


def drain(c: EventConsumer, rounds: int = 50) -> int:
    total = 0
    for _ in range(rounds):
        n = c.run_once(block_ms=20)
        total += n
        if n == 0 and not c._held:
            break
    return total


def pending(r: redis.Redis, stream: str) -> int:
    return int(r.xpending(stream, "g")["pending"])


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_stores_acks_and_is_idempotent(r, request, unique, db) -> None:
    store = request.getfixturevalue("store" if db == "sqlite" else "pg_store")
    c = make(r, store, unique)
    s = f"t:{unique}:events"
    evs = [loiter() for _ in range(30)]
    for e in evs:
        r.xadd(s, encode_event(e))
    # the same events again (a publisher retry after a lost reply) + later revisions
    for e in evs[:10]:
        r.xadd(s, encode_event(e))
        r.xadd(s, encode_event(loiter(event_id=e.event_id, revision=1, state="end")))
    r.xadd(f"t:{unique}:hb", encode_heartbeat(
        CameraHeartbeat(camera_id="cam-a", state="online", ts=dt.datetime.now(dt.UTC))))  # fmt: skip
    assert drain(c) == 51
    assert store.count_events() == 30
    assert pending(r, s) == 0 and pending(r, f"t:{unique}:hb") == 0
    assert {store.get_event(e.event_id)["state"] for e in evs[:10]} == {"end"}  # type: ignore[index]
    assert [h["camera_id"] for h in store.heartbeats()] == ["cam-a"]
    assert c.stats.stored == 50 and c.stats.heartbeats == 1


BAD = {
    "unknown_version": {"v": "2", "type": "event", "data": "{}"},
    "no_version": {"type": "event", "data": "{}"},
    "not_json": {"v": "1", "type": "event", "data": "{nope"},
    "schema": {"v": "1", "type": "event", "data": '{"event_id": "x"}'},
    "oversized": {"v": "1", "type": "event", "data": "x" * (300 * 1024)},
    "bad_heartbeat": {"v": "1", "type": "heartbeat", "data": '{"camera_id": 1}'},
    "binary": {"v": "1", "type": "event", "data": b"\xff\xfe\x00"},
}


def test_bad_messages_dead_lettered_never_crash(r, store, unique) -> None:
    c = make(r, store, unique)
    s = f"t:{unique}:events"
    good = loiter()
    ids = {}
    for name, fields in BAD.items():
        ids[r.xadd(s, fields).decode()] = name
    r.xadd(s, encode_event(good))
    drain(c)
    assert store.count_events() == 1 and store.get_event(good.event_id)
    dead = r.xrange(f"t:{unique}:dead")
    got = {f[b"original_id"].decode(): f[b"reason"].decode() for _, f in dead}
    assert set(got) == set(ids) and len(dead) == len(BAD)
    assert (
        "unsupported schema version"
        in got[next(k for k, v in ids.items() if v == "unknown_version")]
    )
    assert "exceeds" in got[next(k for k, v in ids.items() if v == "oversized")]
    big = next(
        f
        for _, f in dead
        if f[b"original_id"].decode() in ids and int(f[b"data_bytes"]) > 300_000
    )
    assert len(big[b"data"]) == 4096  # raw data kept truncated
    assert pending(r, s) == 0


def test_crashed_consumer_entries_are_claimed_once(r, store, unique) -> None:
    """A consumer that read but died before committing: another claims its entries."""
    s = f"t:{unique}:events"
    evs = [loiter() for _ in range(20)]
    for e in evs:
        r.xadd(s, encode_event(e))
    dead_consumer = make(r, store, unique, name="dead")
    r.xreadgroup("g", "dead", {s: ">"}, count=100)  # read, never acked: "SIGKILL"
    assert pending(r, s) == 20
    del dead_consumer
    patient = make(r, store, unique, name="c2", claim_idle_ms=60_000)
    assert drain(patient) == 0  # not idle long enough yet: left alone
    assert pending(r, s) == 20
    time.sleep(0.15)
    c2 = make(r, store, unique, name="c2", claim_idle_ms=100)
    assert drain(c2) == 20
    assert store.count_events() == 20 and pending(r, s) == 0 and c2.stats.claimed == 20


def test_restarted_consumer_rereads_own_pending_history(r, store, unique) -> None:
    s = f"t:{unique}:events"
    evs = [loiter() for _ in range(5)]
    for e in evs:
        r.xadd(s, encode_event(e))
    make(r, store, unique, name="same")
    r.xreadgroup("g", "same", {s: ">"}, count=100)  # the previous process read them
    again = make(r, store, unique, name="same")  # same name after restart
    assert drain(again) == 5
    assert store.count_events() == 5 and pending(r, s) == 0


def test_poison_message_dead_lettered_after_max_deliveries(r, store, unique) -> None:
    """A message the database refuses (here: a real SQLite trigger) is retried
    max_deliveries times, then dead-lettered; its neighbours are stored."""
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.camera_id = 'poison' "
            "BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
        )
    c = make(r, store, unique, max_deliveries=3)
    s = f"t:{unique}:events"
    ok1, bad, ok2 = loiter(), loiter(camera_id="poison"), loiter()
    for e in (ok1, bad, ok2):
        r.xadd(s, encode_event(e))
    drain(c, rounds=20)
    assert store.count_events() == 2
    dead = r.xrange(f"t:{unique}:dead")
    assert len(dead) == 1
    assert (
        dead[0][1][b"reason"].decode().startswith("failed 3 deliveries: database error")
    )
    assert pending(r, s) == 0


def test_database_outage_holds_batch_without_burning_deliveries(
    r, store, unique, tmp_path
) -> None:
    """While another process holds the write lock, the consumer keeps the decoded
    batch and commits it afterwards: nothing lost, nothing dead-lettered."""
    c = make(r, store, unique, max_deliveries=1)
    s = f"t:{unique}:events"
    lock = sqlite3.connect(tmp_path / "ev.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    evs = [loiter() for _ in range(50)]
    for e in evs:
        r.xadd(s, encode_event(e))
    stop = threading.Event()
    t = threading.Thread(target=c.run, args=(stop,))
    t.start()
    try:
        time.sleep(1.0)
        assert c.stats.db_errors >= 1 and pending(r, s) == 50
        lock.execute("ROLLBACK")
        deadline = time.monotonic() + 10
        while store.count_events() < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        t.join(5)
        lock.close()
    assert store.count_events() == 50
    assert r.xlen(f"t:{unique}:dead") == 0 and pending(r, s) == 0


def test_app_lifespan_runs_the_consumer(
    r, store, unique, tmp_path, monkeypatch
) -> None:
    """create_app(start_consumer=True): a published event becomes visible in the API."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.settings import ApiSettings

    monkeypatch.delenv("HALLMONITOR_ADMIN_TOKEN", raising=False)
    token = store.create_user("ofc", "officer", ["*"])
    app = create_app(
        store=store,
        media_root=tmp_path,
        redis=r,
        settings=ApiSettings(
            retention_interval_s=0, dead_letter_stream=f"t:{unique}:dead"
        ),
        start_consumer=True,
        consumer_kwargs={
            "stream": f"t:{unique}:events",
            "group": "api",
            "consumer": "a1",
        },
    )
    ev = loiter()
    r.xadd(f"t:{unique}:events", encode_event(ev))
    with TestClient(app) as client:
        deadline = time.monotonic() + 10
        got = None
        while time.monotonic() < deadline:
            got = client.get(
                f"/api/events/{ev.event_id}",
                headers={"Authorization": f"Bearer {token}"},
            )
            if got.status_code == 200:
                break
            time.sleep(0.05)
    assert got is not None and got.status_code == 200
    assert got.json()["camera_id"] == ev.camera_id


def test_trimmed_pending_entries_are_dead_lettered(r, store, unique) -> None:
    """Entries trimmed by MAXLEN while pending on a dead consumer are reported in the
    dead-letter stream (not silently lost, not pending forever)."""
    s = f"t:{unique}:events"
    make(r, store, unique, name="dead")
    ids = [r.xadd(s, encode_event(loiter())).decode() for _ in range(3)]
    r.xreadgroup("g", "dead", {s: ">"}, count=10)
    r.xtrim(s, maxlen=1, approximate=False)  # the first two are gone
    time.sleep(0.15)
    c = make(r, store, unique, name="c2", claim_idle_ms=100)
    drain(c)
    dead = {
        f[b"original_id"].decode(): f[b"reason"].decode()
        for _, f in r.xrange(f"t:{unique}:dead")
    }
    assert set(dead) == set(ids[:2])
    assert all("trimmed" in v for v in dead.values())
    assert store.count_events() == 1 and pending(r, s) == 0


def test_dead_letter_data_has_no_camera_credentials(r, store, unique) -> None:
    c = make(r, store, unique)
    s = f"t:{unique}:events"
    for url in (
        "rtsp://admin:s3cretPW@10.0.0.5/live",
        "rtsp%3A%2F%2Fadmin%3As3cretPW%4010.0.0.5",
    ):
        r.xadd(s, {"v": "1", "type": "event", "data": '{"source": "' + url + '"'})
    drain(c)
    dead = r.xrange(f"t:{unique}:dead")
    assert len(dead) == 2
    for _, f in dead:
        assert b"s3cretPW" not in f[b"data"] and b"10.0.0.5" in f[b"data"]
