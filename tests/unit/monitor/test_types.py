"""Frame and Detections: invalid shapes cannot be constructed; masks and anchors."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.types import Anchor, Detections, Frame


def dets(n: int = 3, tid: bool = False) -> Detections:
    xy = np.arange(n, dtype=np.float32)[:, None] * 10
    return Detections(
        xyxy=np.hstack([xy, xy, xy + 4, xy + 8]),
        confidence=np.linspace(0.5, 0.9, n),
        class_id=np.arange(n),
        tracker_id=np.arange(1, n + 1) if tid else None,
        data={"name": np.array([f"o{i}" for i in range(n)])},
    )


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"xyxy": np.zeros((2, 3))}, "xyxy must be (N, 4)"),
        ({"confidence": np.zeros(2)}, "confidence must have length 3"),
        ({"class_id": np.zeros((3, 1))}, "class_id must have 1 dims"),
        ({"tracker_id": np.zeros(4)}, "tracker_id must have length 3"),
        ({"data": {"x": np.zeros(2)}}, "data['x'] must have first dimension 3"),
        ({"xyxy": np.full((3, 4), np.nan)}, "NaN"),
    ],
)
def test_invalid_shapes_rejected(kwargs: dict, needle: str) -> None:
    base = dict(
        xyxy=np.zeros((3, 4)),
        confidence=np.zeros(3),
        class_id=np.zeros(3),
        tracker_id=None,
    )
    with pytest.raises(ValueError) as err:
        Detections(**{**base, **kwargs})
    assert needle in str(err.value)


def test_dtypes_normalised() -> None:
    d = dets()
    assert d.xyxy.dtype == np.float32 and d.confidence.dtype == np.float32
    assert d.class_id.dtype == np.int64


def test_mask_index_and_slice() -> None:
    d = dets(4, tid=True)
    m = d[d.confidence > 0.7]
    assert (
        len(m) == 2
        and list(m.tracker_id) == [3, 4]
        and list(m.data["name"]) == ["o2", "o3"]
    )
    assert len(d[1:3]) == 2 and d[np.array([0, 3])].class_id.tolist() == [0, 3]
    assert len(d[2]) == 1
    with pytest.raises(IndexError):
        d[np.array([True, False])]


def test_empty_and_merge() -> None:
    e = Detections.empty()
    assert len(e) == 0 and e.xyxy.shape == (0, 4)
    m = Detections.merge([dets(2, tid=True), dets(3, tid=True)])
    assert len(m) == 5 and m.tracker_id is not None and "name" in m.data
    m2 = Detections.merge([dets(2, tid=True), dets(1)])
    assert m2.tracker_id is None
    assert len(Detections.merge([])) == 0


@pytest.mark.parametrize(
    ("anchor", "expected"),
    [
        (Anchor.BOTTOM_CENTER, (12.0, 28.0)),
        (Anchor.CENTER, (12.0, 24.0)),
        (Anchor.TOP_CENTER, (12.0, 20.0)),
        (Anchor.CENTER_LEFT, (10.0, 24.0)),
        (Anchor.CENTER_RIGHT, (14.0, 24.0)),
    ],
)
def test_anchors(anchor: Anchor, expected: tuple[float, float]) -> None:
    d = Detections(xyxy=[[10, 20, 14, 28]], confidence=[1], class_id=[0])
    assert tuple(d.anchors(anchor)[0]) == expected
    assert d.area[0] == pytest.approx(32.0)


def test_filter_classes() -> None:
    assert dets(3).filter_classes([0, 2]).class_id.tolist() == [0, 2]


@pytest.mark.parametrize(
    ("image", "needle"),
    [
        (np.zeros((4, 4), np.uint8), "(H, W, 3) uint8"),
        (np.zeros((4, 4, 3), np.float32), "(H, W, 3) uint8"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
        ("not an image", "numpy array"),
    ],
)
def test_frame_rejects_bad_images(image: object, needle: str) -> None:
    with pytest.raises((ValueError, TypeError)) as err:
        Frame("c", 0, 0.0, 0.0, image)  # type: ignore[arg-type]
    assert needle in str(err.value)


def test_frame_resolution() -> None:
    assert Frame("c", 1, 1.0, 2.0, np.zeros((36, 64, 3), np.uint8)).resolution_wh == (
        64,
        36,
    )
