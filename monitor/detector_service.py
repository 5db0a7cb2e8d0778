"""One detector process shared by every camera worker on the box.

Sixteen workers each running their own ONNX session with two threads would fight for
two cores; one service process owns the session and all intra-op threads, and batches
requests that arrive together from several cameras.

Frames cross processes through shared memory, not pickled copies: each client owns a
:class:`multiprocessing.shared_memory.SharedMemory` slot; it copies the frame (or the
crops) into the slot and sends a tiny request ``(client, request id, shapes)``; the
service runs ``detect_batch`` on zero-copy views of the slots and answers with the
detections (a few hundred bytes).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import threading
import time
from collections.abc import Sequence
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
    req_id: int
    shapes: tuple[tuple[int, int, int], ...]


def _serve(
    cfg: DetectorConfig,
    requests: Any,
    responses: dict[int, Any],
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
    calls = 0
    parent = os.getppid()
    try:
        # Also stop when orphaned (the owner was killed without stop()).
        while not stop.is_set() and os.getppid() == parent:
            try:
                first = requests.get(timeout=0.2)
            except queue.Empty:
                continue
            batch: list[_Request] = [first]
            n_images = len(first.shapes)
            deadline = time.monotonic() + batch_wait_s
            while n_images < max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    r = requests.get(timeout=left)
                except queue.Empty:
                    break
                batch.append(r)
                n_images += len(r.shapes)
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
                if err is None:
                    part = [
                        (d.xyxy, d.confidence, d.class_id) for d in results[i : i + k]
                    ]
                    responses[r.client].put((r.req_id, part, None))
                else:
                    responses[r.client].put((r.req_id, None, err))
                i += k
    finally:
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
        self._requests = self._ctx.Queue()
        self._responses = {i: self._ctx.Queue() for i in range(n_clients)}
        self._stop = self._ctx.Event()
        self._info_q = self._ctx.Queue()
        self.slot_bytes = slot_bytes
        self._proc = self._ctx.Process(
            target=_serve,
            args=(
                cfg,
                self._requests,
                self._responses,
                {i: s.name for i, s in enumerate(self._shms)},
                self._info_q,
                self._stop,
                max_batch,
                batch_wait_s,
            ),
            name="detector-service",
            daemon=True,
        )
        self.info: ServiceInfo | None = None

    def start(self, timeout_s: float = 60.0) -> ServiceInfo:
        """Start the process and wait for the model to load."""
        self._proc.start()
        status, payload = self._info_q.get(timeout=timeout_s)
        if status != "ok":
            self.stop()
            raise RuntimeError(f"detector service failed to start: {payload}")
        self.info = payload
        return payload

    def client(self, index: int) -> RemoteDetector:
        """A picklable client handle for slot ``index`` (pass it to a worker)."""
        if self.info is None:
            raise RuntimeError("start() the service first")
        return RemoteDetector(
            index,
            self._shms[index].name,
            self.slot_bytes,
            self._requests,
            self._responses[index],
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
        requests: Any,
        responses: Any,
        info: ServiceInfo,
        timeout_s: float = 10.0,
    ) -> None:
        self._client = client
        self._shm_name = shm_name
        self._slot_bytes = slot_bytes
        self._requests = requests
        self._responses = responses
        self._shm: SharedMemory | None = None
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
            buf = self._buf()
            off = 0
            for a in arrs:
                buf[off : off + a.nbytes] = a.reshape(-1).data
                off += a.nbytes
            self._req += 1
            req_id = self._req
            self._requests.put(
                _Request(self._client, req_id, tuple(tuple(a.shape) for a in arrs))  # type: ignore[misc]
            )
            deadline = time.monotonic() + self.timeout_s
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"detector service did not answer in {self.timeout_s} s"
                    )
                rid, part, err = self._responses.get(timeout=left)
                if rid == req_id:
                    break  # stale answers of timed-out requests are skipped
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
