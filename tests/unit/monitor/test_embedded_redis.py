"""The embedded redis-server: starts on a Unix socket, persists, never outlives us."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import redis

from monitor.embedded_redis import EmbeddedRedis, resolve_redis_url
from tests.conftest import ROOT


def _short_dir() -> Path:
    # Unix socket paths are limited to ~107 bytes: keep the test path short.
    return Path("/tmp") / f"hm-er-{uuid.uuid4().hex[:8]}"


def test_start_use_stop_and_persist() -> None:
    d = _short_dir()
    with EmbeddedRedis(d) as srv:
        r = redis.Redis.from_url(srv.url)
        r.xadd("s", {"a": "1"})
        assert srv.socket.exists()
    assert not srv.socket.exists()
    with EmbeddedRedis(d) as srv2:  # AOF: the entry survived the restart
        assert redis.Redis.from_url(srv2.url).xlen("s") == 1


def test_redis_url_precedence(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("REDIS_URL", "redis://env:6379/0")
    assert resolve_redis_url("redis://cfg:6379/0") == "redis://cfg:6379/0"
    assert resolve_redis_url(None) == "redis://env:6379/0"
    monkeypatch.delenv("REDIS_URL")
    assert resolve_redis_url(None) is None


def test_server_dies_with_a_killed_parent() -> None:
    """Regression: a SIGKILLed `hallmonitor run` left its redis-server running."""
    d = _short_dir()
    code = (
        "import sys, time; from monitor.embedded_redis import EmbeddedRedis;"
        f"s = EmbeddedRedis({str(d)!r}); s.start(); print(s._proc.pid, flush=True);"
        "time.sleep(60)"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    os.kill(pid, 0)  # running
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError("redis-server outlived its killed parent")
