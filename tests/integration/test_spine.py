"""End to end: `hallmonitor run` with real parts, from video to a reviewed event.

One real process tree: the CLI starts an embedded redis-server (no REDIS_URL), SQLite,
the shared detector process, one worker per camera (a real-time file camera and an RTSP
camera behind a password, served by the project's loopback RTSP server), the Redis
consumer and the API on a free port. The test talks HTTP to it like an officer's
browser would, and checks that the camera password leaks nowhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import cv2
import httpx
import numpy as np
import pytest
import yaml

from tests.conftest import ROOT, require_shared
from tests.integration.service import free_port, stop, wait_for

pytestmark = pytest.mark.integration

USER = "officer.jones@district.k12"
PASSWORD = "p@ss:w/rd%!S3cret#"
TOKEN = "e2e-" + "7f3a9c1d5b8e2f40" * 3


@pytest.fixture
def rtsp_camera():  # type: ignore[no-untyped-def]
    from monitor.rtsp_server import RtspServer

    video = require_shared("data/videos/indoor_person.mp4")
    server = RtspServer(credentials=(USER, PASSWORD))
    url = server.add_stream("gym", video, loop=True, width=640)
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CI"):
            raise
        pytest.skip(f"RTSP test server could not start: {exc}")
    yield url
    server.close()


def test_video_to_reviewed_event(tmp_path: Path, rtsp_camera: str) -> None:
    video, models = require_shared("data/videos/concourse_people.avi", "models")
    example = yaml.safe_load((ROOT / "config" / "campus.example.yaml").read_text())
    concourse = next(c for c in example["cameras"] if c["id"] == "concourse")
    concourse["source"] = {"url": str(video), "loop": False, "realtime": True}
    port = free_port()
    cfg = {
        "site": "e2e",
        "data_dir": str(tmp_path / "var"),
        "detector": {**example["detector"], "models_dir": str(models)},
        "api": {"host": "127.0.0.1", "port": port},
        "defaults": example["defaults"],
        "cameras": [
            concourse,
            {
                "id": "gym",
                "source": {
                    "url": rtsp_camera,
                    "credentials": {
                        "username_env": "GYM_USER",
                        "password_env": "GYM_PASS",
                    },
                    "stall_s": 3,
                },
                "zones": [{"id": "floor", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
                "rules": {"loitering": [{"id": "floor-loiter", "zone": "floor"}]},
            },
        ],
    }
    cfg_path = tmp_path / "campus.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = {
        k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")
    }
    env.update(
        HALLMONITOR_ADMIN_TOKEN=TOKEN,
        GYM_USER=USER,
        GYM_PASS=PASSWORD,
        PYTHONPATH=str(ROOT),
    )
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config", str(cfg_path),
             "--log-level", "DEBUG"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    bodies: list[str] = []
    try:
        with httpx.Client(base_url=base, timeout=10) as http:

            def get(path: str, **kw: object) -> httpx.Response:
                r = http.get(path, headers=auth, **kw)  # type: ignore[arg-type]
                bodies.append(
                    r.text if "json" in r.headers.get("content-type", "") else ""
                )
                return r

            wait_for(
                lambda: http.get("/healthz").status_code == 200,
                90,
                "the API",
                proc,
                log,
            )
            assert http.get("/api/events").status_code == 401  # no token, no events

            def loitering() -> list[dict]:  # type: ignore[type-arg]
                r = get(
                    "/api/events",
                    params={"kind": "loitering", "camera_id": "concourse"},
                )
                items = r.json().get("items", []) if r.status_code == 200 else []
                return [e for e in items if e.get("state") == "start"]

            events = wait_for(loitering, 120, "a loitering start event", proc, log)
            ev = events[0]
            assert ev["camera_id"] == "concourse" and ev["kind"] == "loitering"
            one = get(f"/api/events/{ev['id']}")
            assert one.status_code == 200
            roles = {m["role"] for m in one.json()["media"]}
            assert "snapshot" in roles, one.text
            snap = http.get(f"/api/events/{ev['id']}/snapshot.jpg", headers=auth)
            assert (
                snap.status_code == 200 and snap.headers["content-type"] == "image/jpeg"
            )
            img = cv2.imdecode(np.frombuffer(snap.content, np.uint8), cv2.IMREAD_COLOR)
            assert img is not None and img.shape[1] == 1280

            review = http.post(
                f"/api/events/{ev['id']}/review",
                headers=auth,
                json={"action": "acknowledge", "note": "group by the benches, checked"},
            )
            assert review.status_code in (200, 201), review.text
            history = get(f"/api/events/{ev['id']}/reviews").json()
            assert "acknowledge" in str(history)

            def gym_online() -> bool:
                r = get("/api/cameras")
                cams = r.json() if r.status_code == 200 else []
                cams = cams.get("items", cams) if isinstance(cams, dict) else cams
                return any(c.get("camera_id") == "gym" and c.get("state") == "online"
                           for c in cams)  # fmt: skip

            wait_for(gym_online, 60, "the RTSP camera online", proc, log)
            get("/api/events", params={"limit": 500})
    finally:
        text = stop(proc, log)
    # The embedded redis-server was stopped with the service.
    assert not (tmp_path / "var" / "redis" / "redis.sock").exists()
    # The password leaks nowhere: raw, percent-encoded, or as URL userinfo.
    for needle in (PASSWORD, quote(PASSWORD, safe=""), quote(PASSWORD), f"{USER}:"):
        assert needle not in text, f"credential {needle!r} leaked into the logs"
        for b in bodies:
            assert needle not in b, "credential leaked into an API response"
