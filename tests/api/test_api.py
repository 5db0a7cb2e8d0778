"""Review API over a real SQLite store (and PostgreSQL for the core flow)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings
from api.storage import EventStore
from monitor.events import CameraHeartbeat
from tests.api.conftest import T0, flow, loiter

ADMIN_TOKEN = "Zx8-admin-bootstrap-token-91f"


@dataclass
class Api:
    client: TestClient
    store: EventStore
    tokens: dict[str, str]
    media: Path

    def get(self, who: str, url: str, **kw):  # noqa: ANN201
        return self.client.get(
            url, headers={"Authorization": f"Bearer {self.tokens[who]}"}, **kw
        )

    def post(self, who: str, url: str, **kw):  # noqa: ANN201
        return self.client.post(
            url, headers={"Authorization": f"Bearer {self.tokens[who]}"}, **kw
        )


def _make_api(
    store: EventStore, tmp_path: Path, monkeypatch, r=None, settings=None
) -> Api:
    monkeypatch.setenv("HALLMONITOR_ADMIN_TOKEN", ADMIN_TOKEN)
    app = create_app(
        store=store,
        media_root=tmp_path / "media",
        redis=r,
        settings=settings
        or ApiSettings(retention_interval_s=0, dead_letter_stream="x"),
    )
    tokens = {
        "admin": ADMIN_TOKEN,
        "officer": store.create_user("ofc-a", "officer", ["cam-a"]),
        "viewer": store.create_user("view-a", "viewer", ["cam-a"]),
        "officer_b": store.create_user("ofc-b", "officer", ["cam-b"]),
    }
    return Api(TestClient(app), store, tokens, tmp_path / "media")


@pytest.fixture
def api(sqlite_store: EventStore, tmp_path: Path, monkeypatch) -> Iterator[Api]:
    a = _make_api(sqlite_store, tmp_path, monkeypatch)
    with a.client:
        yield a


@pytest.fixture(params=["sqlite", "postgresql"])
def api_both(request, tmp_path: Path, monkeypatch) -> Iterator[Api]:
    store = request.getfixturevalue(
        "sqlite_store" if request.param == "sqlite" else "pg_store"
    )
    a = _make_api(store, tmp_path, monkeypatch)
    with a.client:
        yield a


def test_list_review_history_and_audit(api_both: Api) -> None:
    api = api_both
    evs = [loiter(camera_id="cam-a", ts=T0 + dt.timedelta(minutes=i)) for i in range(3)]
    evs.append(loiter(camera_id="cam-b"))
    api.store.apply_events(evs)
    r = api.get("officer", "/api/events")
    assert r.status_code == 200
    ids = [i["id"] for i in r.json()["items"]]
    assert ids == [
        str(e.event_id) for e in reversed(evs[:3])
    ]  # newest first, cam-a only
    eid = ids[0]
    r = api.post(
        "officer",
        f"/api/events/{eid}/review",
        json={"action": "escalate", "note": "call"},
    )
    assert r.status_code == 201 and r.json()["user_name"] == "ofc-a"
    api.post("officer", f"/api/events/{eid}/review", json={"action": "acknowledge"})
    hist = api.get("officer", f"/api/events/{eid}/reviews").json()
    assert [h["action"] for h in hist] == ["escalate", "acknowledge"]
    assert (
        api.get("officer", f"/api/events/{eid}").json()["review_status"]
        == "acknowledged"
    )
    filt = api.get(
        "officer", "/api/events", params={"review_status": "acknowledged"}
    ).json()
    assert [i["id"] for i in filt["items"]] == [eid]
    audit = api.get("admin", "/api/audit", params={"user_name": "ofc-a"}).json()
    actions = [a["action"] for a in audit]
    assert {
        "review_escalate",
        "review_acknowledge",
        "view",
        "view_reviews",
        "list",
    } <= set(actions)
    assert api.get("officer", "/api/audit").status_code == 403


def test_pagination_cursor_and_offset(api: Api) -> None:
    evs = [
        loiter(camera_id="cam-a", ts=T0 + dt.timedelta(seconds=i // 2))
        for i in range(11)
    ]
    api.store.apply_events(evs)
    seen, cursor = [], None
    while True:
        params = {"limit": 4} | ({"cursor": cursor} if cursor else {})
        page = api.get("admin", "/api/events", params=params).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 11
    off = api.get("admin", "/api/events", params={"limit": 4, "offset": 4}).json()
    assert [i["id"] for i in off["items"]] == seen[4:8]


def test_event_time_filters_take_zone_less_times_as_utc(api: Api) -> None:
    """``since``/``until`` (exclusive) without a zone are UTC; with one, converted
    to UTC."""
    evs = [loiter(camera_id="cam-a", ts=T0 + dt.timedelta(minutes=i)) for i in range(4)]
    api.store.apply_events(evs)
    cet = dt.timezone(dt.timedelta(hours=2))
    lo, hi = T0 + dt.timedelta(minutes=1), T0 + dt.timedelta(minutes=3)
    expect = [str(e.event_id) for e in reversed(evs[1:3])]
    for since, until in (
        (lo.replace(tzinfo=None), hi.replace(tzinfo=None)),
        (lo.astimezone(cet), hi.astimezone(cet)),
    ):
        params = {"since": since.isoformat(), "until": until.isoformat()}
        page = api.get("officer", "/api/events", params=params).json()
        assert [i["id"] for i in page["items"]] == expect, params


def test_scope_hides_other_cameras_as_404(api: Api) -> None:
    ev_b = loiter(camera_id="cam-b")
    api.store.apply_event(ev_b)
    for url in ("", "/snapshot.jpg", "/clip.mp4", "/reviews"):
        assert (
            api.get("officer", f"/api/events/{ev_b.event_id}{url}").status_code == 404
        )
    r = api.post(
        "officer", f"/api/events/{ev_b.event_id}/review", json={"action": "dismiss"}
    )
    assert r.status_code == 404
    assert api.get("officer_b", f"/api/events/{ev_b.event_id}").status_code == 200
    listed = api.get("officer", "/api/events", params={"camera_id": "cam-b"}).json()
    assert listed["items"] == []


def test_roles(api: Api) -> None:
    ev = loiter(camera_id="cam-a")
    api.store.apply_event(ev)
    url = f"/api/events/{ev.event_id}"
    assert (
        api.post("viewer", url + "/review", json={"action": "dismiss"}).status_code
        == 403
    )
    assert api.post("officer", url + "/hold", json={"hold": True}).status_code == 403
    assert api.get("officer", "/api/admin/dead-letters").status_code == 403
    r = api.post("admin", url + "/hold", json={"hold": True})
    assert r.status_code == 200 and r.json()["legal_hold"] is True
    assert api.client.get("/api/events").status_code == 401
    bad = api.client.get("/api/events", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.json() == {
        "error": "invalid or disabled token"
    }


HOSTILE = [
    ("/api/events/not-a-uuid", 400),
    ("/api/events/..%2F..%2Fetc%2Fpasswd", 404),
    ("/api/events/../../etc/passwd", 404),
    ("/api/events/%00", 400),
    (f"/api/events/{'1' * 5000}", 400),
    (f"/api/events/{uuid.uuid4()}", 404),
    (f"/api/events/{uuid.uuid4()}/snapshot.jpg", 404),
    ("/api/events/1' OR '1'='1/clip.mp4", 400),
    ("/api/events?limit=100000", 422),
    ("/api/events?limit=0", 422),
    ("/api/events?limit=abc", 422),
    ("/api/events?offset=-1", 422),
    ("/api/events?kind=' OR 1=1 --", 422),
    ("/api/events?since=yesterday", 422),
    ("/api/events?cursor=%27%3B%20drop%20table%20events", 400),
    ("/api/events?camera_id=' OR 1=1 --", 200),
    ("/api/reports/traffic?bucket=7m", 422),
    ("/api/reports/traffic?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", 400),
    ("/api/reports/traffic?tz=Mars/Olympus", 400),
    ("/api/reports/traffic?tz=../../../etc/passwd", 400),
    ("/api/reports/traffic?tz=" + "A" * 65, 422),
    ("/api/reports/traffic?format=xlsx", 422),
]


@pytest.mark.parametrize(("url", "status"), HOSTILE)
def test_hostile_input_is_4xx_json(api: Api, url: str, status: int) -> None:
    r = api.get("admin", url)
    assert r.status_code == status, r.text
    if status != 200:
        assert "error" in r.json()
    # SQL-ish input did nothing to the tables
    api.store.apply_event(loiter())
    assert api.store.count_events() == 1


def test_review_body_validated(api: Api) -> None:
    ev = loiter(camera_id="cam-a")
    api.store.apply_event(ev)
    url = f"/api/events/{ev.event_id}/review"
    for body in (
        {"action": "delete"},
        {"action": "dismiss", "note": "x" * 2001},
        {},
        {"action": "dismiss", "who": "me"},
    ):
        r = api.post("officer", url, json=body)
        assert r.status_code == 422 and r.json()["error"] == "invalid request"
    assert api.get("officer", url[: -len("/review")] + "/reviews").json() == []


def test_snapshot_boxes_and_clip_ranges(api: Api, write_media) -> None:
    ev = loiter(camera_id="cam-a")
    snap = write_media("cam-a", ev.event_id, "snapshot", b"\xff\xd8plain")
    boxes = write_media("cam-a", ev.event_id, "snapshot_boxes", b"\xff\xd8boxes")
    data = bytes(range(256)) * 8
    clip = write_media("cam-a", ev.event_id, "clip", data)
    api.store.apply_event(ev.model_copy(update={"media": (snap, boxes, clip)}))
    base = f"/api/events/{ev.event_id}"
    assert api.get("viewer", base + "/snapshot.jpg").content == b"\xff\xd8plain"
    r = api.get("viewer", base + "/snapshot.jpg", params={"boxes": "true"})
    assert r.content == b"\xff\xd8boxes" and r.headers["content-type"] == "image/jpeg"
    full = api.get("viewer", base + "/clip.mp4")
    assert full.status_code == 200 and full.content == data
    RANGES = [
        ("bytes=0-99", 206, "bytes 0-99/2048", data[:100]),
        ("bytes=2000-", 206, "bytes 2000-2047/2048", data[2000:]),
        ("bytes=-48", 206, "bytes 2000-2047/2048", data[-48:]),
        ("bytes=2040-99999", 206, "bytes 2040-2047/2048", data[2040:]),
        ("bytes=2048-", 416, "bytes */2048", None),
        ("bytes=50-10", 416, "bytes */2048", None),
        ("bytes=-0", 416, "bytes */2048", None),
        ("items=0-1", 416, "bytes */2048", None),
    ]
    for rng, status, cr, body in RANGES:
        r = api.client.get(
            base + "/clip.mp4",
            headers={"Authorization": f"Bearer {api.tokens['viewer']}", "Range": rng},
        )
        assert (r.status_code, r.headers.get("content-range")) == (status, cr), rng
        if body is not None:
            assert r.content == body
    audit = {a["action"] for a in api.get("admin", "/api/audit").json()}
    assert {"view_snapshot", "view_clip"} <= audit


def test_snapshot_boxes_falls_back_and_missing_file_is_404(
    api: Api, write_media
) -> None:
    ev = loiter(camera_id="cam-a")
    snap = write_media("cam-a", ev.event_id, "snapshot", b"\xff\xd8plain")
    api.store.apply_event(ev.model_copy(update={"media": (snap,)}))
    url = f"/api/events/{ev.event_id}/snapshot.jpg"
    assert api.get("viewer", url, params={"boxes": "true"}).content == b"\xff\xd8plain"
    (api.media / snap.path).unlink()
    assert api.get("viewer", url).status_code == 404


def test_media_row_pointing_outside_root_is_refused(api: Api, tmp_path: Path) -> None:
    """Defence in depth: a row whose path escapes media_root is never served."""
    import sqlalchemy as sa

    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"top secret")
    ev = loiter(camera_id="cam-a")
    api.store.apply_event(ev)
    with api.store.engine.begin() as c:
        c.execute(
            sa.text(
                "insert into media (event_id, role, path, sha256, bytes, content_type)"
                " values (:e, 'snapshot', '../secret.jpg', :h, 10, 'image/jpeg')"
            ),
            {"e": ev.event_id.hex, "h": "0" * 64},
        )
    r = api.get("admin", f"/api/events/{ev.event_id}/snapshot.jpg")
    assert r.status_code == 404 and b"top secret" not in r.content


def test_cameras_stale_offline(sqlite_store, tmp_path, monkeypatch) -> None:
    a = _make_api(
        sqlite_store, tmp_path, monkeypatch,
        settings=ApiSettings(retention_interval_s=0, heartbeat_interval_s=2.0),
    )  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    for cam, age in (("cam-a", 1.0), ("cam-b", 7.0)):
        sqlite_store.upsert_heartbeat(
            CameraHeartbeat(
                camera_id=cam,
                state="online",
                ts=now - dt.timedelta(seconds=age),
                fps_in=15,
                fps_out=5,
                frames_dropped=3,
            )
        )
    rows = {c["camera_id"]: c for c in a.get("admin", "/api/cameras").json()}
    assert (rows["cam-a"]["state"], rows["cam-a"]["stale"]) == ("online", False)
    assert (rows["cam-b"]["state"], rows["cam-b"]["stale"]) == ("offline", True)
    assert rows["cam-a"]["fps_in"] == 15 and rows["cam-a"]["frames_dropped"] == 3
    assert [c["camera_id"] for c in a.get("officer", "/api/cameras").json()] == [
        "cam-a"
    ]


def test_traffic_sums_events_of_one_bucket(api: Api) -> None:
    b0, b1 = T0, T0 + dt.timedelta(minutes=15)
    first = flow(camera_id="cam-a", bucket_start=b0, counts_in={"car": 3})
    api.store.apply_events([
        first,
        # a later revision of the same event replaces it (not summed)
        flow(camera_id="cam-a", bucket_start=b0, counts_in={"car": 5}, revision=1,
             event_id=first.event_id),
        # worker restarted inside the bucket: a second event for the same bucket
        flow(camera_id="cam-a", bucket_start=b0, counts_in={"car": 2, "bus": 1},
             counts_out={"car": 4}),
        flow(camera_id="cam-a", bucket_start=b1, counts_out={"truck": 1}),
        flow(camera_id="cam-b", bucket_start=b0, counts_in={"car": 100}),
    ])  # fmt: skip
    r = api.get(
        "officer", "/api/reports/traffic",
        params={"since": T0.isoformat(), "until": (T0 + dt.timedelta(hours=1)).isoformat()},
    )  # fmt: skip
    assert r.status_code == 200
    got = [
        (b["bucket_start"][11:16], b["counts_in"], b["counts_out"])
        for b in r.json()["buckets"]
    ]
    assert got == [
        ("08:00", {"car": 7, "bus": 1}, {"car": 4}),
        ("08:15", {}, {"truck": 1}),
    ]
    hourly = api.get(
        "admin", "/api/reports/traffic",
        params={"since": T0.isoformat(), "until": (T0 + dt.timedelta(hours=1)).isoformat(),
                "bucket": "1h", "camera_id": "cam-a"},
    ).json()["buckets"]  # fmt: skip
    assert [(b["counts_in"], b["counts_out"]) for b in hourly] == [
        ({"car": 7, "bus": 1}, {"car": 4, "truck": 1})
    ]


def _utc(*a: int) -> dt.datetime:
    return dt.datetime(*a, tzinfo=dt.UTC)


def _report(api: Api, since: dt.datetime, until: dt.datetime, **params: str):
    return api.get(
        "admin", "/api/reports/traffic",
        params={"since": since.isoformat(), "until": until.isoformat(), **params},
    )  # fmt: skip


# (name, tz, bucket, flow bucket starts in UTC, expected (bucket_start, cars in)).
LOCAL_BUCKETS = [
    (
        "days are local days (New York, the DST spring-forward day is 23 h)",
        "America/New_York", "1d",
        [_utc(2026, 3, 8, 4, 30), _utc(2026, 3, 8, 5, 15), _utc(2026, 3, 9, 3, 30)],
        [("2026-03-07T00:00:00-05:00", 1), ("2026-03-08T00:00:00-05:00", 2)],
    ),
    (
        "the same flows in UTC days",
        "UTC", "1d",
        [_utc(2026, 3, 8, 4, 30), _utc(2026, 3, 8, 5, 15), _utc(2026, 3, 9, 3, 30)],
        [("2026-03-08T00:00:00+00:00", 2), ("2026-03-09T00:00:00+00:00", 1)],
    ),
    (
        "hours start on the local hour in a half-hour zone (Kolkata, UTC+5:30)",
        "Asia/Kolkata", "1h",
        [_utc(2026, 6, 1, 8, 0), _utc(2026, 6, 1, 8, 15), _utc(2026, 6, 1, 8, 45)],
        [("2026-06-01T13:00:00+05:30", 2), ("2026-06-01T14:00:00+05:30", 1)],
    ),
    (
        "the repeated hour of the fall-back night is two buckets",
        "America/New_York", "1h",
        [_utc(2026, 11, 1, 5, 30), _utc(2026, 11, 1, 6, 30)],
        [("2026-11-01T01:00:00-04:00", 1), ("2026-11-01T01:00:00-05:00", 1)],
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("tz", "bucket", "starts", "expected"),
    [c[1:] for c in LOCAL_BUCKETS],
    ids=[c[0] for c in LOCAL_BUCKETS],
)
def test_traffic_buckets_follow_local_wall_time(
    api: Api, tz: str, bucket: str, starts: list[dt.datetime], expected: list
) -> None:
    """Regression: daily buckets were UTC days (a New York school's "Monday" ran
    from 19:00 or 20:00 on Sunday), hourly ones split at hh:30 in Kolkata."""
    api.store.apply_events(
        [flow(camera_id="cam-a", bucket_start=b, counts_in={"car": 1}) for b in starts]
    )
    r = _report(api, _utc(2026, 1, 1), _utc(2026, 12, 1), bucket=bucket, tz=tz)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tz"] == tz
    got = [(b["bucket_start"], b["counts_in"].get("car", 0)) for b in body["buckets"]]
    got = [(dt.datetime.fromisoformat(s), n) for s, n in got]
    want = [(dt.datetime.fromisoformat(s), n) for s, n in expected]
    assert got == want
    # The offsets are the local ones, not only the instants.
    assert [g[0].utcoffset() for g in got] == [w[0].utcoffset() for w in want]


def test_traffic_csv_export(api: Api) -> None:
    b0 = T0
    api.store.apply_events([
        flow(camera_id="cam-a", bucket_start=b0, counts_in={"car": 3, "bus": 1},
             counts_out={"car": 2}),
        flow(camera_id="cam-a", line_id="=HYPERLINK(1)", bucket_start=b0,
             counts_in={"car": 1}),
    ])  # fmt: skip
    r = _report(api, b0, b0 + dt.timedelta(hours=1), format="csv")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == [
        "bucket_start",
        "camera_id",
        "line_id",
        "direction",
        "class",
        "count",
    ]
    start = "2026-11-02T08:00:00+00:00"
    assert sorted(rows[1:]) == sorted([
        [start, "cam-a", "entry", "in", "bus", "1"],
        [start, "cam-a", "entry", "in", "car", "3"],
        [start, "cam-a", "entry", "out", "car", "2"],
        # a formula-looking id is neutralised for spreadsheets
        [start, "cam-a", "'=HYPERLINK(1)", "in", "car", "1"],
    ])  # fmt: skip
    audit = api.get("admin", "/api/audit").json()
    assert any(
        a["action"] == "export" and a["object_id"] == "traffic:15m:UTC:csv"
        for a in audit
    ), audit


def test_traffic_csv_respects_camera_scope(api: Api) -> None:
    api.store.apply_events([
        flow(camera_id="cam-a", bucket_start=T0, counts_in={"car": 1}),
        flow(camera_id="cam-b", bucket_start=T0, counts_in={"car": 9}),
    ])  # fmt: skip
    r = api.get(
        "officer", "/api/reports/traffic",
        params={"since": T0.isoformat(), "until": (T0 + dt.timedelta(hours=1)).isoformat(),
                "format": "csv", "camera_id": ["cam-a", "cam-b"]},
    )  # fmt: skip
    cams = {row[1] for row in list(csv.reader(io.StringIO(r.text)))[1:]}
    assert cams == {"cam-a"}


def test_dead_letters_admin_only(
    sqlite_store, tmp_path, monkeypatch, redis_url, unique
) -> None:
    r = redis.Redis.from_url(redis_url)
    dl = f"test:{unique}:dead"
    r.xadd(dl, {"stream": "s", "original_id": "1-0", "reason": "bad json", "type": "event",
                "v": "1", "data": b"\xff{", "data_bytes": "2"})  # fmt: skip
    try:
        a = _make_api(
            sqlite_store, tmp_path, monkeypatch, r=r,
            settings=ApiSettings(retention_interval_s=0, dead_letter_stream=dl),
        )  # fmt: skip
        rows = a.get("admin", "/api/admin/dead-letters").json()
        assert [(x["original_id"], x["reason"], x["data_bytes"]) for x in rows] == [
            ("1-0", "bad json", 2)
        ]
        assert a.get("officer", "/api/admin/dead-letters").status_code == 403
        assert a.client.get("/healthz").json() == {
            "status": "ok",
            "database": True,
            "redis": True,
        }
    finally:
        r.delete(dl)


def test_weak_bootstrap_token_refused(sqlite_store, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HALLMONITOR_ADMIN_TOKEN", "changeme")
    with pytest.raises(ValueError, match="HALLMONITOR_ADMIN_TOKEN.*too weak"):
        create_app(store=sqlite_store, media_root=tmp_path)


def test_retention_in_lifespan_respects_hold(
    sqlite_store, tmp_path, monkeypatch
) -> None:
    import time

    old, held = loiter(camera_id="cam-a", ts=T0), loiter(camera_id="cam-a", ts=T0)
    sqlite_store.apply_events([old, held, loiter(ts=dt.datetime.now(dt.UTC))])
    sqlite_store.set_hold(held.event_id, True)
    a = _make_api(
        sqlite_store, tmp_path, monkeypatch,
        settings=ApiSettings(retention_interval_s=0.05, retention_days=1),
    )  # fmt: skip
    with a.client:
        deadline = time.monotonic() + 5
        while sqlite_store.count_events() != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert sqlite_store.get_event(old.event_id) is None
    assert sqlite_store.get_event(held.event_id) is not None


def test_no_secrets_in_responses_or_logs(
    pg_store, postgres_url, tmp_path, monkeypatch, caplog
) -> None:
    """The DB URL password and the bootstrap token never reach a response or log."""
    caplog.set_level(logging.DEBUG)
    a = _make_api(pg_store, tmp_path, monkeypatch)
    with a.client:
        bodies = [
            a.get("admin", u).text
            for u in (
                "/healthz",
                "/api/events",
                "/api/cameras",
                "/api/audit",
                "/api/events/x",
            )
        ]
    text = "\n".join(bodies) + caplog.text + repr(pg_store)
    assert ADMIN_TOKEN not in text
    assert "postgresql" not in "\n".join(bodies)


def test_database_locked_is_503_not_500(tmp_path, monkeypatch) -> None:
    """While another process holds the SQLite write lock, writes answer 503."""
    import sqlite3

    store = EventStore.from_url(f"sqlite:///{tmp_path / 'ev.db'}", busy_timeout_ms=100)
    ev = loiter(camera_id="cam-a")
    store.apply_event(ev)
    a = _make_api(store, tmp_path, monkeypatch)
    lock = sqlite3.connect(tmp_path / "ev.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        r = a.post(
            "officer", f"/api/events/{ev.event_id}/review", json={"action": "dismiss"}
        )
        assert r.status_code == 503 and r.json() == {"error": "database unavailable"}
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    r = a.post(
        "officer", f"/api/events/{ev.event_id}/review", json={"action": "dismiss"}
    )
    assert r.status_code == 201
    store.close()


def test_settings_from_app_config() -> None:
    from config.loader import load_config
    from config.schema import RedisConfig, StorageConfig, SupervisorConfig

    base = load_config(
        Path(__file__).resolve().parents[2] / "config/campus.example.yaml"
    )
    cfg = base.model_copy(
        update={
            "storage": StorageConfig(retention_days=7),
            "supervisor": SupervisorConfig(heartbeat_s=5),
            "redis": RedisConfig(dead_letter_stream="x:dead", stream="x:ev"),
        }
    )
    s = ApiSettings.from_config(cfg)
    assert (s.retention_days, s.heartbeat_interval_s, s.dead_letter_stream) == (
        7,
        5,
        "x:dead",
    )
    assert s.consumer_kwargs(cfg)["stream"] == "x:ev"
