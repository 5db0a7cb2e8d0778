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


def test_admin_token_generated_once_and_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.app_runner import ensure_admin_token

    monkeypatch.delenv("HALLMONITOR_ADMIN_TOKEN", raising=False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"data_dir": str(tmp_path),
                                   "cameras": [{"id": "a", "source": {"url": "a.mp4"}}]}))  # fmt: skip
    app = load_config(cfg)
    path = ensure_admin_token(app)
    assert path is not None and path.stat().st_mode & 0o777 == 0o600
    first = path.read_text().strip()
    assert len(first) >= 40
    monkeypatch.delenv("HALLMONITOR_ADMIN_TOKEN")
    ensure_admin_token(app)  # a restart reuses the same token
    import os

    assert os.environ["HALLMONITOR_ADMIN_TOKEN"] == first
    monkeypatch.setenv("HALLMONITOR_ADMIN_TOKEN", "x" * 40)
    assert ensure_admin_token(app) is None  # the environment wins
