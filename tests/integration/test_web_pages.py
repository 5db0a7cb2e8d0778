"""The review queue and camera wall render in a real headless Chromium.

The pages are static HTML + JS over the JSON API: what the browser shows must be
exactly what the officer's token may see, snapshots must load (through the API, so
the view is audited) and the token never appears in a request URL.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import uvicorn

from api.main import create_app
from api.storage import EventStore
from monitor.events import (
    CameraHeartbeat,
    CameraState,
    Event,
    EventKind,
    EventState,
    LoiteringPayload,
    MediaRef,
    VehicleFlowPayload,
    media_name,
)
from tests.integration.service import free_port

pytestmark = pytest.mark.integration

ADMIN = "admin-" + "9c41d2e7a6b3f508" * 3


def _loitering(camera: str, media_root: Path) -> Event:
    import hashlib
    import uuid

    eid = uuid.uuid4()
    rel = media_name(camera, eid, "", "jpg")
    img = np.full((180, 320, 3), 120, np.uint8)
    cv2.rectangle(img, (100, 40), (140, 160), (0, 0, 255), 3)
    data = cv2.imencode(".jpg", img)[1].tobytes()
    (media_root / camera).mkdir(parents=True, exist_ok=True)
    (media_root / rel).write_bytes(data)
    now = dt.datetime.now(dt.UTC)
    return Event(
        event_id=eid, camera_id=camera, kind=EventKind.LOITERING, state=EventState.START,
        ts=now, started_at=now,
        payload=LoiteringPayload(rule_id="r", zone_id="benches", tracker_id=7,
                                 class_name="person", dwell_s=65.0,
                                 bbox_xyxy=(100, 40, 140, 160), threshold_s=60),
        media=(MediaRef(role="snapshot", path=rel, sha256=hashlib.sha256(data).hexdigest(),
                        bytes=len(data), content_type="image/jpeg"),),
    )  # fmt: skip


def _flow(camera: str, start: dt.datetime, cars: int) -> Event:
    import uuid

    end = start + dt.timedelta(minutes=15)
    return Event(
        event_id=uuid.uuid4(), camera_id=camera, kind=EventKind.VEHICLE_FLOW,
        state=EventState.INSTANT, ts=end, started_at=start,
        payload=VehicleFlowPayload(rule_id="flow", line_id="gate-line", bucket_start=start,
                                   bucket_end=end, counts_in={"car": cars, "bus": 1},
                                   counts_out={"car": 2}),
    )  # fmt: skip


@pytest.fixture
def served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str, dict]]:
    monkeypatch.setenv("HALLMONITOR_ADMIN_TOKEN", ADMIN)
    media = tmp_path / "media"
    store = EventStore.from_url(f"sqlite:///{tmp_path / 'db.sqlite'}")
    events = {"a": _loitering("gate-a", media), "b": _loitering("gate-b", media)}
    for ev in events.values():
        store.apply_event(ev)
    now = dt.datetime.now(dt.UTC)
    store.upsert_heartbeat(
        CameraHeartbeat(camera_id="gate-a", state=CameraState.ONLINE, ts=now, fps_in=25,
                        fps_out=5, last_frame_ts=now)
    )  # fmt: skip
    hour = now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=2)
    for cam, n in (("gate-a", 3), ("gate-b", 40)):
        store.apply_event(_flow(cam, hour, n))
    officer = store.create_user("officer", "officer", ["gate-a"])
    app = create_app(store=store, media_root=media)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None)
    )
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield (
        f"http://127.0.0.1:{port}",
        officer,
        {k: str(e.event_id) for k, e in events.items()},
    )
    server.should_exit = True
    t.join(10)


def _dom(chromium: str, url: str, tmp: Path) -> str:
    out = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp}", "--virtual-time-budget=8000",
         "--run-all-compositor-stages-before-draw", "--dump-dom", url],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_review_page_shows_scoped_events_with_snapshots(
    served: tuple[str, str, dict], chromium_path: str, tmp_path: Path
) -> None:
    base, token, ids = served
    dom = _dom(chromium_path, f"{base}/#token={token}", tmp_path / "chrome1")
    assert 'data-ready="1"' in dom, dom[-2000:]
    rows = re.findall(r'<tr data-event-id="([0-9a-f-]+)" data-kind="loitering"', dom)
    assert rows == [ids["a"]]  # camera b is outside the officer's scope
    assert "flow at gate-line: 4 in, 2 out" in dom  # gate-a's count bucket
    assert "loitering in benches: person #7, 65 s" in dom
    assert re.search(r'data-loaded="1" data-width="320"', dom), "snapshot did not load"
    for action in ("acknowledge", "escalate", "dismiss"):
        assert f'data-action="{action}"' in dom
    # the snapshot view went through the API and was audited for this officer
    import httpx

    audit = httpx.get(
        f"{base}/api/audit", headers={"Authorization": f"Bearer {ADMIN}"}
    ).json()
    assert any(
        a["user_name"] == "officer" and a["object_id"] == ids["a"] for a in audit
    )
    assert not any(
        a["object_id"] == ids["b"] and a["user_name"] == "officer" for a in audit
    )


def test_wall_shows_camera_state(
    served: tuple[str, str, dict], chromium_path: str, tmp_path: Path
) -> None:
    base, token, _ = served
    dom = _dom(chromium_path, f"{base}/wall#token={token}", tmp_path / "chrome2")
    assert 'data-camera="gate-a" data-state="online"' in dom, dom[-2000:]
    assert "25.0 fps in" in dom
    assert 'data-camera="gate-b"' not in dom


def test_traffic_page_shows_scoped_counts(
    served: tuple[str, str, dict], chromium_path: str, tmp_path: Path
) -> None:
    """Counts per line and bucket, only for the officer's cameras, in the
    browser's time zone (UTC in the test browser), with a CSV button."""
    base, token, _ = served
    dom = _dom(chromium_path, f"{base}/traffic#token={token}", tmp_path / "chrome4")
    assert 'data-ready="1"' in dom, dom[-2000:]
    rows = re.findall(r'<tr data-camera="([^"]+)" data-line="gate-line">', dom)
    assert rows == ["gate-a"]  # gate-b is outside the officer's scope
    assert '<td class="in">4</td><td class="out">2</td><td>bus 1/0, car 3/2</td>' in dom
    assert "1 bucket(s) · 4 in · 2 out" in dom
    assert 'id="csv"' in dom
    import httpx

    audit = httpx.get(
        f"{base}/api/audit", headers={"Authorization": f"Bearer {ADMIN}"}
    ).json()
    assert any(
        a["user_name"] == "officer" and a["object_id"].startswith("traffic:1d:")
        for a in audit
    )


def test_without_token_the_sign_in_form_shows(
    served: tuple[str, str, dict], chromium_path: str, tmp_path: Path
) -> None:
    base, _, _ = served
    dom = _dom(chromium_path, f"{base}/", tmp_path / "chrome3")
    assert re.search(r'<form id="login">', dom), dom[:1500]
    assert "data-event-id" not in dom


def test_static_files_only_from_the_table(served: tuple[str, str, dict]) -> None:
    import httpx

    base, _, _ = served
    assert httpx.get(f"{base}/static/app.js").status_code == 200
    for bad in ("../main.py", "..%2Fmain.py", "index.htm", "%2e%2e/storage.py"):
        assert httpx.get(f"{base}/static/{bad}").status_code == 404
    page = httpx.get(f"{base}/")
    assert page.headers["x-frame-options"] == "DENY"
    assert "Content-Security-Policy" in page.text
