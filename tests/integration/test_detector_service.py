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
