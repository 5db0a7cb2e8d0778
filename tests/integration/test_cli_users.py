"""`hallmonitor users add` creates a working, scoped API token."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from api.main import create_app
from config.loader import load_config
from monitor.app_runner import open_store
from monitor.cli import main
from monitor.events import Event


def test_users_add_prints_a_working_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("HALLMONITOR_ADMIN_TOKEN", raising=False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {"data_dir": str(tmp_path / "var"),
             "cameras": [{"id": "a", "source": {"url": "a.mp4"}},
                         {"id": "b", "source": {"url": "b.mp4"}}]}
        )
    )  # fmt: skip
    rc = main(["users", "add", "alice", "--config", str(cfg), "--role", "officer",
               "--cameras", "a"])  # fmt: skip
    token = capsys.readouterr().out.strip()
    assert rc == 0 and len(token) >= 20
    store = open_store(load_config(cfg))
    now = dt.datetime.now(dt.UTC)
    ids = {}
    for cam in ("a", "b"):
        ev = Event.new(
            camera_id=cam, kind="camera_health", state="instant", ts=now, started_at=now,
            payload={"kind": "camera_health", "status": "offline"},
        )  # fmt: skip
        store.apply_event(ev)
        ids[cam] = str(ev.event_id)
    app = create_app(store=store, media_root=tmp_path / "media")
    with TestClient(app) as http:
        auth = {"Authorization": f"Bearer {token}"}
        ok = http.get("/api/events", headers=auth)
        assert ok.status_code == 200
        assert [e["id"] for e in ok.json()["items"]] == [ids["a"]]  # b is out of scope
        assert http.get(f"/api/events/{ids['a']}", headers=auth).status_code == 200
        assert http.get(f"/api/events/{ids['b']}", headers=auth).status_code == 404
        bad = http.get("/api/events", headers={"Authorization": "Bearer nope-" + token})
        assert bad.status_code == 401
        only_b = http.get("/api/events", params={"camera_id": "b"}, headers=auth)
        assert only_b.status_code == 200 and only_b.json()["items"] == []
