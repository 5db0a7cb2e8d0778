"""The shared detector process: same answers as the in-process detector, through
shared memory, for several clients at once."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from config.detector import DetectorConfig
from monitor.detector_service import DetectorService
from tests.conftest import require_shared


@pytest.fixture(scope="module")
def cfg() -> DetectorConfig:
    models = require_shared("models/yolox_nano.onnx").parent
    return DetectorConfig(model="yolox_nano", models_dir=str(models), threads=2)


def test_remote_matches_local(cfg: DetectorConfig) -> None:
    from monitor.detector import load_detector

    img = cv2.imread(str(require_shared("data/images/bus.jpg")))
    local = load_detector(cfg).detect(img)
    with DetectorService(cfg, n_clients=1) as svc:
        remote = svc.client(0)
        got = remote.detect(img)
        assert remote.model_sha256 == svc.info.model_sha256  # type: ignore[union-attr]
        crops = remote.detect_batch([img[:400, :400], img])
    assert len(got) == len(local) >= 4
    np.testing.assert_allclose(got.xyxy, local.xyxy, atol=1e-3)
    np.testing.assert_array_equal(got.class_id, local.class_id)
    assert len(crops) == 2 and len(crops[1]) == len(local)


def test_many_clients_concurrently(cfg: DetectorConfig) -> None:
    img = cv2.imread(str(require_shared("data/images/zidane.jpg")))
    results: dict[int, list[int]] = {}
    with DetectorService(cfg, n_clients=4, max_batch=4) as svc:
        clients = [svc.client(i) for i in range(4)]

        def work(i: int) -> None:
            results[i] = [len(clients[i].detect(img)) for _ in range(5)]

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    counts = {n for v in results.values() for n in v}
    assert len(results) == 4 and len(counts) == 1 and counts.pop() >= 2


def test_bad_input_is_an_error_not_a_dead_service(cfg: DetectorConfig) -> None:
    with DetectorService(cfg, n_clients=1, slot_bytes=1_000_000) as svc:
        c = svc.client(0)
        with pytest.raises(ValueError, match="expected"):
            c.detect(np.zeros((10, 10), np.uint8))
        with pytest.raises(ValueError, match="slot holds"):
            c.detect(np.zeros((1000, 1000, 3), np.uint8))
        assert len(c.detect(np.zeros((64, 64, 3), np.uint8))) == 0  # still serving


def test_missing_model_fails_to_start(tmp_path) -> None:
    bad = DetectorConfig(model=str(tmp_path / "nope.onnx"))
    svc = DetectorService(bad, n_clients=1)
    with pytest.raises(RuntimeError, match="failed to start"):
        svc.start()


def _detect_forever(client, path: str) -> None:  # a camera worker's detector use
    img = cv2.imread(path)
    while True:
        client.detect(img)


def _detect_once(client, path: str, out) -> None:
    out.put(len(client.detect(cv2.imread(path))))


def test_worker_killed_while_waiting_does_not_break_its_successor(
    cfg: DetectorConfig,
) -> None:
    """Bug: workers waited for answers on a multiprocessing queue whose reader lock
    is shared by every process that uses it. A worker SIGKILLed while waiting (most
    of its time) kept the lock, and the supervisor's restarted worker for the same
    camera timed out on every frame. Now each client has a datagram socket, and the
    successor skips answers meant for the dead worker."""
    import multiprocessing as mp
    import os
    import signal
    import time

    from monitor.detector import load_detector

    ctx = mp.get_context("spawn")
    busy = str(require_shared("data/images/zidane.jpg"))
    bus = str(require_shared("data/images/bus.jpg"))
    expected = len(load_detector(cfg).detect(cv2.imread(bus)))
    with DetectorService(cfg, n_clients=2) as svc:
        for _ in range(3):  # three crashes of the camera on slot 0
            p = ctx.Process(target=_detect_forever, args=(svc.client(0), busy))
            p.start()
            time.sleep(1.5)  # model answers ~20/s: it is mid-request now
            os.kill(p.pid, signal.SIGKILL)
            p.join(10)
            # The restarted worker (a new process on the same slot) is answered,
            # with its own image's detections, not a stale answer for the old one.
            out = ctx.Queue()
            q = ctx.Process(target=_detect_once, args=(svc.client(0), bus, out))
            q.start()
            assert out.get(timeout=20) == expected
            q.join(10)
        # The other camera never noticed.
        assert len(svc.client(1).detect(cv2.imread(bus))) == expected


def test_service_killed_is_restarted_and_clients_carry_on(cfg: DetectorConfig) -> None:
    """Bug: the shared detector process was never restarted; once it died (OOM,
    SIGKILL), every camera logged a failed detection per frame until the whole
    service was restarted. The watchdog restarts it on the same sockets and slots,
    and the workers' existing handles get answers again."""
    import os
    import signal
    import time

    img = cv2.imread(str(require_shared("data/images/bus.jpg")))
    with DetectorService(cfg, n_clients=2) as svc:
        client = svc.client(0)
        client.timeout_s = 2.0
        expected = len(client.detect(img))
        os.kill(svc._proc.pid, signal.SIGKILL)  # noqa: SLF001
        svc._proc.join(5)  # noqa: SLF001
        assert not svc.alive
        with pytest.raises(TimeoutError):
            client.detect(img)  # down: a bounded wait, not a hang
        assert svc.ensure_running(max_restarts=1)
        assert svc.alive and svc.restarts == 1
        assert len(client.detect(img)) == expected  # the same handle works again
        assert len(svc.client(1).detect(img)) == expected
        # The budget: one restart per window here, so a second death stays down.
        os.kill(svc._proc.pid, signal.SIGKILL)  # noqa: SLF001
        svc._proc.join(5)  # noqa: SLF001
        assert not svc.ensure_running(max_restarts=1)
        # The watchdog reports it once (hallmonitor run: a camera-health alert per
        # camera), not on every check.
        said: list[str] = []
        stop = threading.Event()
        dog = threading.Thread(
            target=svc.watch,
            args=(stop,),
            kwargs={"every_s": 0.05, "on_down": said.append, "max_restarts": 1},
        )
        dog.start()
        time.sleep(0.5)
        stop.set()
        dog.join(5)
        assert len(said) == 1 and "not being restarted" in said[0]
