"""Helpers for integration tests that run `hallmonitor run` as a real process tree."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    fn: Callable[[], T | None],
    timeout_s: float,
    what: str,
    proc: subprocess.Popen[bytes],
    log: Path,
    retry_on: tuple[type[BaseException], ...] = (httpx.HTTPError,),
) -> T:
    """Poll ``fn`` until it returns something truthy; fail (with the end of the
    service's log) when the service exits or ``timeout_s`` passes.

    Args:
        fn: The check; exceptions in ``retry_on`` count as "not yet".
        timeout_s: Seconds to wait.
        what: What is awaited, for the failure message.
        proc: The ``hallmonitor run`` process.
        log: Its combined stdout/stderr file.
    """
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"hallmonitor run exited ({proc.returncode}) waiting for {what}:\n"
                        + log.read_text()[-4000:])  # fmt: skip
        try:
            last = fn()
            if last:
                return last
        except retry_on:
            pass
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}; last={last!r}\n"
                + log.read_text()[-4000:])  # fmt: skip


def stop(proc: subprocess.Popen[bytes], log: Path) -> str:
    """SIGTERM the service, require a clean exit (code 0) within 30 s; its log."""
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("hallmonitor run did not stop within 30 s of SIGTERM")
    text = log.read_text(errors="replace")
    assert rc == 0, text[-3000:]
    return text
