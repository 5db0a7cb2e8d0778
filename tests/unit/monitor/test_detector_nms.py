"""monitor.nms and monitor.letterbox against brute-force references."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from monitor.letterbox import letterbox_blob_into, letterbox_into, unletterbox
from monitor.nms import batched_nms, box_iou, nms


def _iou_ref(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _nms_ref(boxes: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    """Textbook greedy NMS, one pair at a time."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep: list[int] = []
    for i in order:
        if all(_iou_ref(boxes[i].tolist(), boxes[k].tolist()) <= thr for k in keep):
            keep.append(i)
    return keep


def _random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, 200, (n, 2))
    wh = rng.uniform(5, 80, (n, 2))
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
        ([0, 0, 10, 10], [5, 0, 15, 10], 50 / 150),
        ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),
        ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),  # empty union: 0, not NaN
    ],
)
def test_box_iou(a: list[float], b: list[float], expected: float) -> None:
    assert box_iou(np.array([a]), np.array([b]))[0, 0] == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("thr", [0.3, 0.5, 0.7])
def test_nms_matches_textbook(seed: int, thr: float) -> None:
    rng = np.random.default_rng(seed)
    boxes = _random_boxes(rng, 60)
    scores = rng.uniform(0, 1, 60).astype(np.float32)
    assert nms(boxes, scores, thr).tolist() == _nms_ref(boxes, scores, thr)


@pytest.mark.parametrize("seed", range(3))
def test_batched_nms_is_per_class_nms(seed: int) -> None:
    rng = np.random.default_rng(seed)
    boxes = _random_boxes(rng, 80)
    scores = rng.uniform(0, 1, 80).astype(np.float32)
    cls = rng.integers(0, 4, 80)
    got = set(batched_nms(boxes, scores, cls, 0.5).tolist())
    want: set[int] = set()
    for c in range(4):
        idx = np.flatnonzero(cls == c)
        want |= {int(idx[i]) for i in _nms_ref(boxes[idx], scores[idx], 0.5)}
    assert got == want


def test_nms_empty() -> None:
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).size == 0
    assert batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int), 0.5).size == 0


@pytest.mark.parametrize("centred", [True, False])
@pytest.mark.parametrize(
    ("wh", "canvas_wh"),
    [((640, 360), (416, 416)), ((360, 640), (416, 416)), ((1920, 1080), (640, 640)),
     ((300, 300), (320, 320)), ((50, 2000), (416, 416))],
)  # fmt: skip
def test_letterbox_round_trip(
    centred: bool, wh: tuple[int, int], canvas_wh: tuple[int, int]
) -> None:
    """A white rectangle drawn in the frame comes back where it was (within 1 px)."""
    w, h = wh
    img = np.zeros((h, w, 3), np.uint8)
    box = np.array([[w * 0.3, h * 0.4, w * 0.6, h * 0.9]], np.float32)
    x1, y1, x2, y2 = box[0].astype(int)
    img[y1:y2, x1:x2] = 255
    canvas = np.empty((canvas_wh[1], canvas_wh[0], 3), np.uint8)
    info = letterbox_into(img, canvas, centred)
    # padding is grey 114 and sits where the convention says
    if centred:
        assert abs(info.pad_x - (canvas_wh[0] - w * info.scale) / 2) <= 1
        assert abs(info.pad_y - (canvas_wh[1] - h * info.scale) / 2) <= 1
    else:
        assert info.pad_x == info.pad_y == 0
    # everything outside the placed image is grey 114
    grey = int((canvas == 114).all(axis=2).sum())
    placed = round(w * info.scale) * round(h * info.scale)
    assert abs(grey - (canvas_wh[0] * canvas_wh[1] - placed)) <= 2 * max(canvas_wh)
    mask = cv2.inRange(canvas, (200, 200, 200), (255, 255, 255))
    ys, xs = np.nonzero(mask)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    back = unletterbox(found, info)
    tol = 1.5 / info.scale
    np.testing.assert_allclose(back, [[x1, y1, x2, y2]], atol=tol)


def test_unletterbox_clips_to_frame() -> None:
    canvas = np.empty((64, 64, 3), np.uint8)
    info = letterbox_into(np.zeros((32, 64, 3), np.uint8), canvas, centred=True)
    out = unletterbox(np.array([[-10, 0, 80, 70]], np.float32), info)
    np.testing.assert_allclose(out, [[0, 0, 64, 32]])


@pytest.mark.parametrize("matrix_max", [0, 1024])
def test_both_nms_paths_agree(monkeypatch: pytest.MonkeyPatch, matrix_max: int) -> None:
    """Small inputs use the IoU-matrix pass, large ones the row-per-kept-box loop."""
    import monitor.nms as nms_mod

    monkeypatch.setattr(nms_mod, "_MATRIX_MAX", matrix_max)
    rng = np.random.default_rng(7)
    boxes = _random_boxes(rng, 120)
    scores = rng.uniform(0, 1, 120).astype(np.float32)
    cls = rng.integers(0, 3, 120)
    assert nms(boxes, scores, 0.5).tolist() == _nms_ref(boxes, scores, 0.5)
    got = set(batched_nms(boxes, scores, cls, 0.5).tolist())
    want: set[int] = set()
    for c in range(3):
        idx = np.flatnonzero(cls == c)
        want |= {int(idx[i]) for i in _nms_ref(boxes[idx], scores[idx], 0.5)}
    assert got == want


@pytest.mark.parametrize(
    ("centred", "rgb", "scale"), [(True, True, 1 / 255), (False, False, 1.0)]
)
@pytest.mark.parametrize("wh", [(640, 360), (300, 500), (416, 416), (1, 1)])
def test_blob_letterbox_equals_canvas_then_transpose(
    centred: bool, rgb: bool, scale: float, wh: tuple[int, int]
) -> None:
    """The fast direct-to-tensor path equals canvas letterbox + reorder + CHW + scale."""
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (wh[1], wh[0], 3), dtype=np.uint8)
    canvas = np.empty((416, 416, 3), np.uint8)
    a = letterbox_into(img, canvas, centred)
    ref = (canvas[..., ::-1] if rgb else canvas).transpose(2, 0, 1) * np.float32(scale)
    blob = np.full((3, 416, 416), np.nan, np.float32)
    b = letterbox_blob_into(img, blob, centred, rgb, scale)
    assert a == b
    np.testing.assert_allclose(blob, ref, rtol=1e-6)
