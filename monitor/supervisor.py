"""One worker process per camera, started, watched and restarted.

The supervisor knows nothing about cameras beyond their ids: a factory makes the
(unstarted) worker process for a camera. A worker that exits with code 0 finished on
purpose (a replayed file ended, it was told to stop) and is left alone. Any other exit
(an exception, a signal, the OOM killer's SIGKILL) is a crash: the worker is restarted
after a short back-off, and when it crashed more than ``max_restarts`` times within
``restart_window_s`` the camera is marked ``failed`` and ``on_alert`` is called once,
so that somebody learns the camera is no longer watched.

Shutdown sends SIGTERM (workers flush their queued events and exit) and kills what is
still alive after the timeout.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from config.schema import SupervisorConfig
from monitor.secrets import redact

__all__ = ["Supervisor", "WorkerState", "install_signal_handlers", "watch_parent"]

log = logging.getLogger(__name__)

# Back-off between restarts of one camera: 0.5 s, 1 s, 2 s … capped; a crash loop
# must not eat the CPU the other cameras need.
_BACKOFF_INITIAL_S = 0.5
_BACKOFF_MAX_S = 30.0


class WorkerState:
    """Values of :meth:`Supervisor.states`."""

    STARTING = "starting"  # started, not yet seen alive by a poll
    RUNNING = "running"
    RESTARTING = "restarting"  # crashed, waiting for its back-off
    FAILED = "failed"  # crashed too often: given up, alert raised
    STOPPED = "stopped"  # exited cleanly, or stopped by the supervisor


@dataclass
class _Worker:
    camera_id: str
    proc: multiprocessing.process.BaseProcess | None = None
    state: str = WorkerState.STARTING
    crashes: deque[float] = field(default_factory=deque)
    restarts: int = 0
    restart_at: float = 0.0
    last_exit: int | None = None


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Supervisor:
    """Start one worker per camera and keep them running.

    Args:
        factory: ``factory(camera_id)`` returns an unstarted ``Process`` whose target
            runs the camera (it gets its stop event through the factory's closure).
        camera_ids: Cameras to run.
        cfg: Restart policy and shutdown timeout.
        on_alert: Called as ``on_alert(camera_id, message)`` when a camera fails.
    """

    def __init__(
        self,
        factory: Callable[[str], multiprocessing.process.BaseProcess],
        camera_ids: Sequence[str],
        cfg: SupervisorConfig,
        on_alert: Callable[[str, str], None] | None = None,
    ) -> None:
        if len(set(camera_ids)) != len(camera_ids):
            raise ValueError(f"duplicate camera ids: {list(camera_ids)}")
        self.factory = factory
        self.cfg = cfg
        self.on_alert = on_alert
        self._workers = {cid: _Worker(cid) for cid in camera_ids}
        self._lock = threading.RLock()
        self._stopping = False

    # ---------------------------------------------------------------- public
    def start(self) -> None:
        """Start every camera's worker."""
        with self._lock:
            for w in self._workers.values():
                if w.proc is None:
                    self._spawn(w)

    def poll(self) -> None:
        """One watchdog pass: notice exits, restart crashed workers when due."""
        now = time.monotonic()
        with self._lock:
            if self._stopping:
                return
            for w in self._workers.values():
                self._poll_one(w, now)

    def run(self, stop: threading.Event, interval_s: float = 0.2) -> None:
        """Poll until ``stop`` is set (does not stop the workers; see :meth:`stop`)."""
        while not stop.is_set():
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - the watchdog itself must not die
                log.exception("supervisor poll failed")
            stop.wait(interval_s)

    def stop(self, timeout_s: float | None = None) -> None:
        """SIGTERM every worker, wait up to ``timeout_s``, then SIGKILL the rest."""
        timeout = self.cfg.shutdown_timeout_s if timeout_s is None else timeout_s
        with self._lock:
            self._stopping = True
            procs = [
                (w, w.proc)
                for w in self._workers.values()
                if w.proc is not None and w.proc.is_alive()
            ]
            for _, p in procs:
                try:
                    p.terminate()
                except (OSError, ValueError):
                    pass
        deadline = time.monotonic() + timeout
        for _, p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
        for w, p in procs:
            if p.is_alive():
                log.warning(
                    "camera %s: worker pid %s ignored SIGTERM for %.1f s, killing it",
                    w.camera_id,
                    p.pid,
                    timeout,
                )
                p.kill()
                p.join(2.0)
        with self._lock:
            for w in self._workers.values():
                if w.state != WorkerState.FAILED:
                    w.state = WorkerState.STOPPED
                if w.proc is not None:
                    w.last_exit = w.proc.exitcode
                    _close(w.proc)
                    w.proc = None

    def states(self) -> dict[str, str]:
        """``{camera_id: state}`` (see :class:`WorkerState`)."""
        with self._lock:
            return {cid: w.state for cid, w in self._workers.items()}

    def pids(self) -> dict[str, int | None]:
        """``{camera_id: pid}`` of the current worker processes (None if none)."""
        with self._lock:
            return {
                cid: (w.proc.pid if w.proc is not None and w.proc.is_alive() else None)
                for cid, w in self._workers.items()
            }

    def restarts(self) -> dict[str, int]:
        """``{camera_id: restarts so far}``."""
        with self._lock:
            return {cid: w.restarts for cid, w in self._workers.items()}

    # ---------------------------------------------------------------- internals
    def _spawn(self, w: _Worker) -> None:
        try:
            proc = self.factory(w.camera_id)
            proc.start()
        except Exception as exc:  # noqa: BLE001 - counts as a crash
            log.error(
                "camera %s: cannot start worker: %s", w.camera_id, redact(str(exc))
            )
            w.proc = None
            self._crashed(w, time.monotonic(), f"worker could not start: {exc}")
            return
        w.proc = proc
        w.state = WorkerState.STARTING
        log.info("camera %s: worker started (pid %s)", w.camera_id, proc.pid)

    def _poll_one(self, w: _Worker, now: float) -> None:
        if w.state in (WorkerState.FAILED, WorkerState.STOPPED):
            return
        if w.state == WorkerState.RESTARTING:
            if now >= w.restart_at:
                w.restarts += 1
                self._spawn(w)
            return
        p = w.proc
        if p is None:
            return
        if p.is_alive():
            w.state = WorkerState.RUNNING
            return
        code = p.exitcode
        w.last_exit = code
        _close(p)
        w.proc = None
        if code == 0:
            w.state = WorkerState.STOPPED
            log.info("camera %s: worker exited cleanly; not restarted", w.camera_id)
            return
        self._crashed(w, now, f"worker {_describe_exit(code)}")

    def _crashed(self, w: _Worker, now: float, why: str) -> None:
        w.crashes.append(now)
        while w.crashes and w.crashes[0] < now - self.cfg.restart_window_s:
            w.crashes.popleft()
        n = len(w.crashes)
        if n > self.cfg.max_restarts:
            w.state = WorkerState.FAILED
            msg = redact(
                f"camera {w.camera_id} failed: worker crashed {n} times within "
                f"{self.cfg.restart_window_s:g} s (last: {why}); not restarting"
            )
            log.error("%s", msg)
            if self.on_alert is not None:
                try:
                    self.on_alert(w.camera_id, msg)
                except Exception:  # noqa: BLE001 - alerting must not kill us
                    log.exception("camera %s: alert callback failed", w.camera_id)
            return
        delay = min(_BACKOFF_INITIAL_S * 2 ** (n - 1), _BACKOFF_MAX_S)
        w.state = WorkerState.RESTARTING
        w.restart_at = now + delay
        log.warning(
            "camera %s: %s; restart %d/%d in %.1f s",
            w.camera_id,
            redact(why),
            n,
            self.cfg.max_restarts,
            delay,
        )


def _close(p: multiprocessing.process.BaseProcess) -> None:
    try:
        p.close()
    except (ValueError, AttributeError):
        pass


def install_signal_handlers(stop: threading.Event) -> None:
    """Make SIGTERM and SIGINT set ``stop`` (call from the main thread)."""

    def handler(signum: int, _frame: object) -> None:
        log.info("signal %s: shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def watch_parent(sig: int = signal.SIGTERM) -> None:
    """Call first thing in a worker: get ``sig`` when the supervisor process dies.

    A supervisor killed with SIGKILL (OOM killer, ``kill -9``) cannot stop its workers;
    without this they would keep running unsupervised, holding cameras and publishing.
    Uses Linux ``prctl(PR_SET_PDEATHSIG)``; elsewhere a thread polls the parent pid.
    """
    import os

    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, int(sig), 0, 0, 0) == 0:  # PR_SET_PDEATHSIG = 1
            if os.getppid() != parent:  # died before prctl took effect
                os.kill(os.getpid(), sig)
            return
    except (OSError, AttributeError):
        pass

    def poll() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), sig)

    threading.Thread(target=poll, name="watch-parent", daemon=True).start()
