"""Supervisor with real child processes: crash, SIGKILL, clean exit, shutdown."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from config.schema import SupervisorConfig
from monitor.supervisor import Supervisor

pytestmark = pytest.mark.integration
CTX = mp.get_context("spawn")
ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------- worker targets
def sleeper(stop, marker: str | None = None) -> None:
    """Runs until stop/SIGTERM; then 'flushes' (writes marker) and exits 0."""
    flag = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: flag.set())
    if marker:
        Path(marker + ".ready").touch()
    while not (flag.is_set() or stop.is_set()):
        time.sleep(0.02)
    if marker:
        Path(marker).write_text("flushed")


def crasher(stop, url: str) -> None:
    raise RuntimeError(f"cannot open {url}")


def clean_exit(stop) -> None:
    return


def stubborn(stop) -> None:
    """Ignores SIGTERM (a worker stuck in a C call)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(60)


def queue_then_flush(stop, redis_url: str, stream: str, n: int) -> None:
    """Holds n events in memory; publishes them all on SIGTERM before exiting."""
    flag = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: flag.set())
    queued = [{"i": str(i)} for i in range(n)]
    r = redis.Redis.from_url(redis_url)
    r.incr(f"{stream}:ready")
    while not (flag.is_set() or stop.is_set()):
        time.sleep(0.02)
    for item in queued:
        r.xadd(stream, item)


# ----------------------------------------------------------------- helpers
def _factory(target, *args):
    stop = CTX.Event()

    def make(camera_id: str):
        return CTX.Process(target=target, args=(stop, *args), name=f"cam-{camera_id}")

    return make, stop


def _wait(pred, timeout_s: float, sup: Supervisor | None = None) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if sup is not None:
            sup.poll()
        if pred():
            return True
        time.sleep(0.05)
    return False


CFG = SupervisorConfig(max_restarts=2, restart_window_s=60, shutdown_timeout_s=3)


def test_sigkilled_worker_is_restarted(tmp_path) -> None:
    make, _ = _factory(sleeper)
    sup = Supervisor(make, ["a", "b"], CFG)
    sup.start()
    try:
        assert _wait(lambda: set(sup.states().values()) == {"running"}, 20, sup)
        pid = sup.pids()["a"]
        os.kill(pid, signal.SIGKILL)
        assert _wait(
            lambda: (
                sup.pids()["a"] not in (None, pid) and sup.states()["a"] == "running"
            ),
            20,
            sup,
        ), sup.states()
        assert sup.restarts() == {"a": 1, "b": 0}
        assert sup.states()["b"] == "running"
    finally:
        sup.stop()
    assert set(sup.states().values()) == {"stopped"}


def test_crash_loop_ends_failed_with_one_alert() -> None:
    secret_url = "rtsp://john.doe@corp:s3cr%40t@10.0.0.9/stream"
    make, _ = _factory(crasher, secret_url)
    alerts: list[tuple[str, str]] = []
    sup = Supervisor(make, ["cam1"], CFG, on_alert=lambda c, m: alerts.append((c, m)))
    sup.start()
    try:
        assert _wait(lambda: sup.states()["cam1"] == "failed", 40, sup), sup.states()
        for _ in range(10):  # stays failed, no more restarts or alerts
            sup.poll()
            time.sleep(0.05)
    finally:
        sup.stop()
    assert sup.restarts()["cam1"] == CFG.max_restarts
    assert len(alerts) == 1
    cam, msg = alerts[0]
    assert cam == "cam1"
    assert "crashed 3 times" in msg and "exit code 1" in msg
    assert "s3cr" not in msg
    assert sup.states()["cam1"] == "failed"


def test_clean_exit_is_not_restarted() -> None:
    make, _ = _factory(clean_exit)
    sup = Supervisor(make, ["cam1"], CFG)
    sup.start()
    try:
        assert _wait(lambda: sup.states()["cam1"] == "stopped", 20, sup)
        time.sleep(0.6)
        sup.poll()
        assert sup.restarts()["cam1"] == 0
        assert sup.states()["cam1"] == "stopped"
    finally:
        sup.stop()


def test_factory_error_counts_as_crash() -> None:
    def make(camera_id: str):
        raise OSError("no more processes")

    alerts: list[str] = []
    cfg = SupervisorConfig(max_restarts=1, restart_window_s=60)
    sup = Supervisor(make, ["c"], cfg, on_alert=lambda c, m: alerts.append(m))
    sup.start()
    assert _wait(lambda: sup.states()["c"] == "failed", 10, sup)
    assert "could not start" in alerts[0]


def test_stop_flushes_queued_events_and_kills_stubborn(
    redis_url: str, unique: str
) -> None:
    stream = f"test:sup:{unique}"
    make_q, _ = _factory(queue_then_flush, redis_url, stream, 500)
    make_s, _ = _factory(stubborn)

    def make(camera_id: str):
        return make_s(camera_id) if camera_id == "stuck" else make_q(camera_id)

    sup = Supervisor(make, ["q1", "q2", "stuck"], CFG)
    sup.start()
    r = redis.Redis.from_url(redis_url)
    try:
        # Both flushing workers have their SIGTERM handler installed.
        assert _wait(lambda: int(r.get(f"{stream}:ready") or 0) == 2, 30, sup)
        time.sleep(0.3)  # the stubborn one too (it imports the same modules)
        t0 = time.monotonic()
        sup.stop(timeout_s=2.0)
        took = time.monotonic() - t0
        assert took < 6.0  # 2 s grace + kill, with slack for a loaded machine
        assert r.xlen(stream) == 1000  # both workers flushed everything
        assert set(sup.states().values()) == {"stopped"}
        assert all(p is None for p in sup.pids().values())
    finally:
        r.delete(stream, f"{stream}:ready")


_MAIN = """
import sys, threading, time, multiprocessing as mp
sys.path.insert(0, {root!r})
from config.schema import SupervisorConfig
from monitor.logs import setup_logging
from monitor.supervisor import Supervisor, install_signal_handlers
from tests.integration.test_supervisor import sleeper
if __name__ == "__main__":
    setup_logging("INFO")
    ctx = mp.get_context("spawn")
    ev = ctx.Event()
    sup = Supervisor(
        lambda c: ctx.Process(target=sleeper, args=(ev, {tmp!r} + "/" + c)),
        ["a", "b", "c"],
        SupervisorConfig(shutdown_timeout_s=3),
    )
    stop = threading.Event()
    install_signal_handlers(stop)
    sup.start()
    print("pids", *sup.pids().values(), flush=True)
    sup.run(stop)
    sup.stop()
    print("done", flush=True)
"""


def err_of(proc: subprocess.Popen) -> str:
    proc.kill()
    return proc.communicate()[1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_shuts_down_everything(tmp_path, sig) -> None:
    script = tmp_path / "main.py"
    script.write_text(_MAIN.format(root=str(ROOT), tmp=str(tmp_path)))
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    line = proc.stdout.readline().split()
    assert line[0] == "pids", line
    pids = [int(p) for p in line[1:]]
    ready = [tmp_path / f"{c}.ready" for c in "abc"]
    assert _wait(lambda: all(p.exists() for p in ready), 30), err_of(proc)
    t0 = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=15)
    assert time.monotonic() - t0 < 5.0
    assert proc.returncode == 0, err
    assert "done" in out
    for c in "abc":  # every worker took the clean path
        assert (tmp_path / c).read_text() == "flushed"
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def watched_sleeper(stop, marker: str) -> None:
    from monitor.supervisor import watch_parent

    watch_parent()
    sleeper(stop, marker)


_ORPHAN = """
import sys, time, multiprocessing as mp
sys.path.insert(0, {root!r})
from config.schema import SupervisorConfig
from monitor.supervisor import Supervisor
from tests.integration.test_supervisor import watched_sleeper
if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    ev = ctx.Event()
    sup = Supervisor(
        lambda c: ctx.Process(target=watched_sleeper, args=(ev, {tmp!r} + "/" + c)),
        ["a", "b"], SupervisorConfig(),
    )
    sup.start()
    print("pids", *sup.pids().values(), flush=True)
    time.sleep(60)
"""


def test_workers_exit_when_supervisor_is_sigkilled(tmp_path) -> None:
    """watch_parent(): a supervisor killed with SIGKILL leaves no orphan workers."""
    script = tmp_path / "orphan.py"
    script.write_text(_ORPHAN.format(root=str(ROOT), tmp=str(tmp_path)))
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    pids = [int(p) for p in proc.stdout.readline().split()[1:]]
    assert len(pids) == 2
    ready = [tmp_path / f"{c}.ready" for c in "ab"]
    assert _wait(lambda: all(p.exists() for p in ready), 30)
    proc.kill()
    proc.wait(5)

    def gone() -> bool:
        for pid in pids:
            try:
                os.kill(pid, 0)
                return False
            except ProcessLookupError:
                pass
        return True

    assert _wait(gone, 10)
    # They took the clean (flushing) path, not a hard kill.
    assert all((tmp_path / c).read_text() == "flushed" for c in "ab")
