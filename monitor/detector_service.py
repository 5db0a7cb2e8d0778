"""One detector process shared by every camera worker on the box.

Sixteen workers each running their own ONNX session with two threads would fight for
two cores; one service process owns the session and all intra-op threads, and batches
requests that arrive together from several cameras.

Frames cross processes through shared memory, not pickled copies: each client owns a
:class:`multiprocessing.shared_memory.SharedMemory` slot; it copies the frame (or the
crops) into the slot and sends a tiny request ``(client, request id, shapes)``; the
service runs ``detect_batch`` on zero-copy views of the slots and answers with the
detections (a few hundred bytes).

Requests and answers travel over one ``AF_UNIX``/``SOCK_SEQPACKET`` socket pair per
client, not ``multiprocessing`` queues: a queue's reader and writer locks are shared by
every process that ever used it, so a camera worker killed while it waited for an
answer (SIGKILL, OOM) left the lock held and its restarted successor never got another
detection. A datagram socket has no lock to leave behind, a message is read whole or not
at all, and request ids carry the client's pid, so answers meant for a dead
predecessor are recognised and skipped.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import pickle
import select
import selectors
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np
import numpy.typing as npt

from config.detector import DetectorConfig
from monitor.types import Detections

__all__ = ["DetectorService", "RemoteDetector", "ServiceInfo"]

log = logging.getLogger(__name__)

_SLOT_BYTES_DEFAULT = 1920 * 1088 * 3 * 2  # one 1080p frame, or a few crops, x2 slack
_MAX_MSG = 1 << 20  # bytes read per datagram (answers are a few KB)
_SOCK_BUF = 1 << 20  # requested socket buffers (the kernel may cap them lower)


def _socket_pair() -> tuple[socket.socket, socket.socket]:
    """``(service end, client end)`` of one client's message channel."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for sock in (a, b):
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, _SOCK_BUF)
            except OSError:  # capped by the kernel: the default still fits answers
                pass
    return a, b


@dataclass(frozen=True)
class ServiceInfo:
    """What clients need to know about the model the service runs."""

    class_names: tuple[str, ...]
    model_sha256: str
    model_name: str
    input_size: tuple[int, int]


@dataclass(frozen=True)
class _Request:
    client: int
    req_id: tuple[int, int]  # (client pid, sequence): unique across restarts
    shapes: tuple[tuple[int, int, int], ...]


def _read_requests(
    sel: selectors.BaseSelector, events: list[Any], out: list[_Request]
) -> int:
    """Append every request waiting on the ready sockets; returns the images added."""
    n = 0
    for key, _ in events:
        sock, cid = key.fileobj, key.data
        while True:
            try:
                data = sock.recv(_MAX_MSG, socket.MSG_DONTWAIT)  # type: ignore[union-attr]
            except BlockingIOError:
                break
            except OSError as exc:
                log.warning("detector service: client %d: %s; dropping it", cid, exc)
                sel.unregister(sock)
                break
            if not data:  # every copy of the client end is closed: shutting down
                sel.unregister(sock)
                break
            try:
                req = pickle.loads(data)
                if not isinstance(req, _Request) or req.client != cid:
                    raise ValueError(f"not a request of client {cid}")
            except Exception as exc:  # noqa: BLE001 - a bad message must not stop the service
                log.warning("detector service: client %d: bad request: %s", cid, exc)
                continue
            out.append(req)
            n += len(req.shapes)
    return n


def _answer(sock: socket.socket, req: _Request, part: Any, err: str | None) -> None:
    """Send one answer; never blocks (an answer nobody reads is dropped)."""
    data = pickle.dumps((req.req_id, part, err), protocol=pickle.HIGHEST_PROTOCOL)
    if len(data) > _MAX_MSG:
        data = pickle.dumps(
            (req.req_id, None, f"answer of {len(data)} bytes too large")
        )
    try:
        sock.send(data, socket.MSG_DONTWAIT)
    except BlockingIOError:
        log.debug(
            "detector service: client %d is not reading; answer dropped", req.client
        )
    except OSError as exc:
        log.warning("detector service: client %d: cannot answer: %s", req.client, exc)


def _serve(
    cfg: DetectorConfig,
    socks: dict[int, socket.socket],
    shm_names: dict[int, str],
    info_q: Any,
    stop: Any,
    max_batch: int,
    batch_wait_s: float,
) -> None:
    """Service process body: load the model once, answer batched requests."""
    from monitor.detector import load_detector

    try:
        det = load_detector(cfg)
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        info_q.put(("error", f"{exc.__class__.__name__}: {exc}"))
        return
    info_q.put(
        (
            "ok",
            ServiceInfo(
                tuple(det.class_names),
                det.model_sha256,
                det.model_name,
                (int(det.input_size[0]), int(det.input_size[1])),
            ),
        )
    )
    shms = {cid: SharedMemory(name=n) for cid, n in shm_names.items()}
    sel = selectors.DefaultSelector()
    for cid, sock in socks.items():
        sel.register(sock, selectors.EVENT_READ, cid)
    calls = 0
    parent = os.getppid()
    try:
        # Also stop when orphaned (the owner was killed without stop()).
        while not stop.is_set() and os.getppid() == parent:
            if not sel.get_map():
                time.sleep(0.2)
                continue
            batch: list[_Request] = []
            n_images = _read_requests(sel, sel.select(timeout=0.2), batch)
            if not batch:
                continue
            deadline = time.monotonic() + batch_wait_s
            while n_images < max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                ready = sel.select(timeout=left)
                if not ready:
                    break
                n_images += _read_requests(sel, ready, batch)
            images: list[npt.NDArray[np.uint8]] = []
            for r in batch:
                buf = shms[r.client].buf
                off = 0
                for h, w, c in r.shapes:
                    n = h * w * c
                    images.append(
                        np.ndarray((h, w, c), np.uint8, buffer=buf, offset=off)
                    )
                    off += n
            try:
                results = det.detect_batch(images)
                err = None
            except Exception as exc:  # noqa: BLE001 - per request, never kill the service
                results, err = [], f"{exc.__class__.__name__}: {exc}"
            del images  # release views before the clients reuse their slots
            calls += 1
            i = 0
            for r in batch:
                k = len(r.shapes)
                part = None
                if err is None:
                    part = [
                        (d.xyxy, d.confidence, d.class_id) for d in results[i : i + k]
                    ]
                _answer(socks[r.client], r, part, err)
                i += k
    finally:
        sel.close()
        for s in shms.values():
            s.close()


class DetectorService:
    """Owns the detector process and the shared-memory slots of its clients.

    Args:
        cfg: Detector config (the service loads the model).
        n_clients: Number of client slots (one per camera worker).
        slot_bytes: Bytes of shared memory per client.
        max_batch: Most images per inference.
        batch_wait_s: How long the service waits to fill a batch after the first
            request (seconds; small, so latency stays low).
    """

    def __init__(
        self,
        cfg: DetectorConfig,
        n_clients: int,
        *,
        slot_bytes: int = _SLOT_BYTES_DEFAULT,
        max_batch: int = 4,
        batch_wait_s: float = 0.004,
    ) -> None:
        self.cfg = cfg
        self._ctx = mp.get_context("spawn")
        self._shms = [
            SharedMemory(create=True, size=slot_bytes) for _ in range(n_clients)
        ]
        # (service end, client end) per client. Both stay open here for the life of
        # the service: every worker a camera ever gets uses the same client end, and
        # a restarted service process takes over the same service ends, so workers
        # carry on after a service crash without being restarted themselves.
        self._pairs = [_socket_pair() for _ in range(n_clients)]
        self._stop = self._ctx.Event()
        self._info_q = self._ctx.Queue()
        self.slot_bytes = slot_bytes
        self._max_batch, self._batch_wait_s = max_batch, batch_wait_s
        self._proc = self._new_process()
        self._restarts: list[float] = []
        self.restarts = 0
        self.info: ServiceInfo | None = None

    def _new_process(self) -> Any:
        return self._ctx.Process(
            target=_serve,
            args=(
                self.cfg,
                {i: pair[0] for i, pair in enumerate(self._pairs)},
                {i: s.name for i, s in enumerate(self._shms)},
                self._info_q,
                self._stop,
                self._max_batch,
                self._batch_wait_s,
            ),
            name="detector-service",
            daemon=True,
        )

    def start(self, timeout_s: float = 60.0) -> ServiceInfo:
        """Start the process and wait for the model to load."""
        self._proc.start()
        status, payload = self._info_q.get(timeout=timeout_s)
        if status != "ok":
            self.stop()
            raise RuntimeError(f"detector service failed to start: {payload}")
        self.info = payload
        return payload

    @property
    def alive(self) -> bool:
        """Whether the service process is running."""
        return bool(self._proc.is_alive())

    def ensure_running(
        self, max_restarts: int = 5, window_s: float = 300.0, timeout_s: float = 60.0
    ) -> bool:
        """Restart the service process if it died; returns whether it is running.

        Workers keep their client handles: the new process serves the same sockets
        and shared-memory slots (frames that were waiting time out, a few at most).
        At most ``max_restarts`` restarts within ``window_s`` seconds; past that the
        service stays down and this logs an error on each call.
        """
        if self._stop.is_set() or self._proc.is_alive():
            return not self._stop.is_set()
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < window_s]
        code = self._proc.exitcode
        if len(self._restarts) >= max_restarts:
            log.error(
                "detector service is down (exit code %s) and was restarted %d times "
                "within %.0f s; not restarting: no camera gets detections",
                code,
                len(self._restarts),
                window_s,
            )
            return False
        log.warning("detector service died (exit code %s); restarting it", code)
        self._restarts.append(now)
        self.restarts += 1
        self._proc = self._new_process()
        self._proc.start()
        try:
            status, payload = self._info_q.get(timeout=timeout_s)
        except Exception as exc:  # noqa: BLE001 - queue.Empty or a broken queue
            status, payload = "error", f"no answer in {timeout_s} s ({exc!r})"
        if status != "ok":
            log.error("detector service failed to restart: %s", payload)
            if self._proc.is_alive():
                self._proc.kill()
            return False
        log.info("detector service restarted (%s)", payload.model_name)
        return True

    def watch(
        self,
        stop: Any,
        every_s: float = 1.0,
        on_down: Callable[[str], None] | None = None,
        **budget: float,
    ) -> None:
        """Call :meth:`ensure_running` every ``every_s`` until ``stop`` is set
        (the body of a watchdog thread).

        Args:
            stop: Anything with ``wait(timeout)`` (a threading/multiprocessing Event).
            every_s: Seconds between checks.
            on_down: Called once with a message when the service is down for good
                (restart budget spent, or it failed to start again).
            **budget: ``max_restarts``, ``window_s``, ``timeout_s`` of
                :meth:`ensure_running`.
        """
        reported = False
        while not stop.wait(every_s):
            up = self.ensure_running(**budget)  # type: ignore[arg-type]
            if up:
                reported = False
            elif not reported and not self._stop.is_set():
                reported = True
                if on_down is not None:
                    on_down(
                        "shared detector process is down and is not being restarted "
                        f"(exit code {self._proc.exitcode}, {self.restarts} restarts): "
                        "no detections until hallmonitor is restarted"
                    )

    def client(self, index: int) -> RemoteDetector:
        """A picklable client handle for slot ``index`` (pass it to a worker)."""
        if self.info is None:
            raise RuntimeError("start() the service first")
        return RemoteDetector(
            index,
            self._shms[index].name,
            self.slot_bytes,
            self._pairs[index][1],
            self.info,
        )

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the process and free the shared memory."""
        self._stop.set()
        if self._proc.is_alive():
            self._proc.join(timeout_s)
            if self._proc.is_alive():
                self._proc.kill()
        for s in self._shms:
            s.close()
            try:
                s.unlink()
            except FileNotFoundError:
                pass
        for svc_end, cli_end in self._pairs:
            svc_end.close()
            cli_end.close()

    def __enter__(self) -> DetectorService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RemoteDetector:
    """Client side: same surface as ``OnnxDetector`` (detect, detect_batch, metadata)."""

    def __init__(
        self,
        client: int,
        shm_name: str,
        slot_bytes: int,
        sock: socket.socket,
        info: ServiceInfo,
        timeout_s: float = 10.0,
    ) -> None:
        self._client = client
        self._shm_name = shm_name
        self._slot_bytes = slot_bytes
        self._sock = sock
        self._shm: SharedMemory | None = None
        self._pid = -1  # process that last drained the socket
        self._req = 0
        self._lock = threading.Lock()
        self.timeout_s = timeout_s
        self.class_names = info.class_names
        self.model_sha256 = info.model_sha256
        self.model_name = info.model_name
        self.input_size = info.input_size

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_shm"] = None
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _adopt(self) -> None:
        """First use in this process: forget answers meant for a predecessor."""
        if self._pid == os.getpid():
            return
        self._pid, self._req = os.getpid(), 0
        stale = 0
        while True:
            try:
                if not self._sock.recv(_MAX_MSG, socket.MSG_DONTWAIT):
                    break
            except BlockingIOError:
                break
            stale += 1
        if stale:
            log.info(
                "detector client %d: skipped %d stale answer(s)", self._client, stale
            )

    def _buf(self) -> memoryview:  # type: ignore[type-arg]
        if self._shm is None:
            # Attach only. The spawned worker shares the parent's resource tracker,
            # which keeps one entry per name: the service owner unlinks it on stop.
            self._shm = SharedMemory(name=self._shm_name)
        return self._shm.buf  # type: ignore[return-value]

    def detect(self, image: npt.NDArray[np.uint8]) -> Detections:
        """Detect on one ``(H, W, 3)`` uint8 BGR image."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        """Detect on several images in one request (they share one inference batch)."""
        arrs = [np.ascontiguousarray(im) for im in images]
        for a in arrs:
            if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or a.size == 0:
                raise ValueError(
                    f"expected (H, W, 3) uint8 images, got {a.shape} {a.dtype}"
                )
        need = sum(a.nbytes for a in arrs)
        if need > self._slot_bytes:
            raise ValueError(
                f"images need {need} bytes; the slot holds {self._slot_bytes}"
            )
        with self._lock:
            self._adopt()
            buf = self._buf()
            off = 0
            for a in arrs:
                buf[off : off + a.nbytes] = a.reshape(-1).data
                off += a.nbytes
            self._req += 1
            req_id = (self._pid, self._req)
            shapes = tuple(tuple(a.shape) for a in arrs)
            req = _Request(self._client, req_id, shapes)  # type: ignore[arg-type]
            try:
                self._sock.send(pickle.dumps(req, protocol=pickle.HIGHEST_PROTOCOL))
            except OSError as exc:
                raise RuntimeError(f"detector service is gone: {exc}") from exc
            deadline = time.monotonic() + self.timeout_s
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"detector service did not answer in {self.timeout_s} s"
                    )
                ready, _, _ = select.select([self._sock], [], [], left)
                if not ready:
                    continue
                data = self._sock.recv(_MAX_MSG)
                if not data:
                    raise RuntimeError("detector service is gone (socket closed)")
                rid, part, err = pickle.loads(data)
                if rid == req_id:
                    break  # answers of timed-out requests or of a predecessor
        if err is not None:
            raise RuntimeError(f"detector service: {err}")
        return [Detections(xyxy=x, confidence=c, class_id=k) for x, c, k in part]

    def close(self) -> None:
        """Detach from the shared memory."""
        if self._shm is not None:
            self._shm.close()
            self._shm = None


def default_threads() -> int:
    """Intra-op threads for the shared session: every core of the box."""
    return max(1, os.cpu_count() or 1)
