"""A camera worker SIGKILLed under `hallmonitor run`: its loitering visits go on.

Real process tree (embedded Redis, SQLite, shared detector, supervisor, consumer,
API) on the shared concourse video, where people sit on the west benches for a
minute. Once loitering events are open, the concourse worker is killed; the
supervisor restarts it, and the new worker restores the visits from the camera's
state file (pipelines/loitering.py). Every event open at the kill must then be
carried on by the restored pipeline (a skipped revision marks its messages: an
orphan end would be exactly one revision later), and the people still on the
benches must keep their events with dwell growing past the kill, taken over by
new track ids that continue after the old ones.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import ROOT, require_shared
from tests.integration.service import free_port, stop, wait_for

pytestmark = pytest.mark.integration

# A state file not written yet, or written without the rule's key, is "not yet".
RETRY = (httpx.HTTPError, OSError, ValueError, KeyError)
TOKEN = "restart-" + "5d1e0b7a9c3f4e21" * 3


def _worker_pid(root_pid: int, video: Path) -> int | None:
    """The descendant process that has the camera's video open."""
    psutil = pytest.importorskip("psutil")
    real = os.path.realpath(video)  # ../shared may be a link (a CI clone's is)
    for child in psutil.Process(root_pid).children(recursive=True):
        try:
            if any(os.path.realpath(f.path) == real for f in child.open_files()):
                return int(child.pid)
        except psutil.Error:
            continue
    return None


def test_killed_worker_carries_its_loitering_visits_on(tmp_path: Path) -> None:
    video, models = require_shared("data/videos/concourse_people.avi", "models")
    example = yaml.safe_load((ROOT / "config" / "campus.example.yaml").read_text())
    concourse = next(c for c in example["cameras"] if c["id"] == "concourse")
    concourse["source"] = {"url": str(video), "loop": True, "realtime": True}
    port = free_port()
    data = tmp_path / "var"
    cfg = {
        "site": "restart",
        "data_dir": str(data),
        "detector": {**example["detector"], "models_dir": str(models)},
        "api": {"host": "127.0.0.1", "port": port},
        "defaults": example["defaults"],
        "cameras": [concourse],
    }
    cfg_path = tmp_path / "campus.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = {
        k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")
    }
    env.update(HALLMONITOR_ADMIN_TOKEN=TOKEN, PYTHONPATH=str(ROOT))
    state_file = data / "state" / "concourse.json"
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config", str(cfg_path)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            wait_for(lambda: http.get("/healthz").status_code == 200, 90, "the API",
                  proc, log)  # fmt: skip

            def open_visits() -> dict | None:  # type: ignore[type-arg]
                saved = json.loads(state_file.read_text())
                visits = saved["rules"]["loitering:west-benches-loiter"]["visits"]
                with_event = [v for v in visits if v["event"]]
                # Two open events, one of them at least 10 s old: people who sit.
                old = [v for v in with_event if v["last_in_ts"] - v["visit_ts"] > 10]
                return saved if len(with_event) >= 2 and old else None

            saved = wait_for(
                open_visits, 150, "two open loitering events", proc, log, RETRY
            )
            pid = wait_for(lambda: _worker_pid(proc.pid, video), 10, "the worker",
                        proc, log)  # fmt: skip
            os.kill(pid, signal.SIGKILL)
            killed_at = time.time()
            visits = saved["rules"]["loitering:west-benches-loiter"]["visits"]
            at_kill = {v["event"]["event_id"]: v for v in visits if v["event"]}
            next_id = saved["tracker"]["next_id"]

            def carried_on() -> dict | None:  # type: ignore[type-arg]
                got = {}
                for eid in at_kill:
                    r = http.get(f"/api/events/{eid}", headers=auth)
                    ev = r.json() if r.status_code == 200 else {}
                    if ev.get("revision", -1) < at_kill[eid]["event"]["revision"] + 2:
                        return None
                    got[eid] = ev
                return got

            # Messages of the restored visits: update every 5 s, end after 1.5 s.
            latest = wait_for(carried_on, 60, "messages of the restored visits",
                           proc, log)  # fmt: skip
    finally:
        text = stop(proc, log)
    assert "restored" in text and "of worker restart" in text, text[-3000:]
    continued = []
    for eid, ev in latest.items():
        before = at_kill[eid]
        # Not an orphan end: that would be the saved revision + 1, at the saved
        # message's time.
        assert ev["revision"] >= before["event"]["revision"] + 2, ev
        if ev["payload"]["tracker_id"] >= next_id:
            # Taken over by one of the new worker's tracks (their ids continue
            # after the saved next id): the dwell went on past the kill.
            assert ev["payload"]["dwell_s"] > before["last_in_ts"] - before["visit_ts"]
            assert dt.datetime.fromisoformat(ev["ts"]).timestamp() > killed_at
            continued.append(eid)
    assert continued, (latest, at_kill)
