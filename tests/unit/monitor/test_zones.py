"""Zone geometry: polygon membership against OpenCV, directed lines with hysteresis."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from monitor.types import Detections
from monitor.zones import (
    LineZone,
    PolygonZone,
    lookup_rows,
    select_births,
    select_tracks,
)

CONCAVE = [(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.5, 0.4), (0.1, 0.9)]


@pytest.mark.parametrize("wh", [(640, 360), (1920, 1080), (37, 91)])
def test_polygon_matches_opencv(wh) -> None:
    zone = PolygonZone.from_relative(CONCAVE, wh)
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, (5000, 2)) * np.array(wh)
    got = zone.trigger(pts)
    contour = zone.polygon.astype(np.float32).reshape(-1, 1, 2)
    dist = np.array(
        [cv2.pointPolygonTest(contour, tuple(map(float, p)), True) for p in pts]
    )
    clear = np.abs(dist) > 1e-6  # points exactly on an edge are ambiguous
    assert np.array_equal(got[clear], dist[clear] > 0)
    assert 0.2 < got.mean() < 0.8


def test_polygon_empty_and_bad_input() -> None:
    zone = PolygonZone.from_relative(CONCAVE, (100, 100))
    assert zone.trigger(np.zeros((0, 2))).shape == (0,)
    with pytest.raises(ValueError, match=r"anchors must be \(N, 2\)"):
        zone.trigger(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="polygon must be"):
        PolygonZone([(0, 0), (1, 1)])
    with pytest.raises(ValueError, match="NaN"):
        PolygonZone([(0, 0), (1, 1), (np.nan, 0)])


def test_line_geometry_independent_of_endpoint_order() -> None:
    a = LineZone.from_relative((0.1, 0.5), (0.9, 0.5), "down", (100, 100), 0.0)
    b = LineZone.from_relative((0.9, 0.5), (0.1, 0.5), "down", (100, 100), 0.0)
    pts = np.array([[50, 40], [50, 60], [50, 50]])
    assert np.allclose(a.signed_distance(pts), [-10, 10, 0])
    assert np.allclose(b.signed_distance(pts), [-10, 10, 0])
    assert np.allclose(a.along([[10, 0], [90, 0], [50, 99]]), [0, 1, 0.5])
    with pytest.raises(ValueError, match="parallel"):
        LineZone((0, 0), (10, 0), (1, 0))
    with pytest.raises(ValueError, match="same point"):
        LineZone((5, 5), (5, 5), (0, 1))
    with pytest.raises(ValueError, match="unknown in_direction"):
        LineZone.from_relative((0, 0), (1, 1), "sideways", (10, 10))


# (anchor y per frame for track 1, expected crossings "i"/"o"/"." per frame)
LINE_TABLE = [
    ([40, 45, 55, 60], "..i."),  # band is 48..52 (hysteresis 2 px)
    ([60, 55, 45, 40], "..o."),
    ([40, 49, 51, 49, 51, 40], "......"),  # jitter inside the band
    ([40, 50, 50, 50, 53], "....i"),  # stop on the line, then go on
    ([60, 40, 60, 40], ".oio"),  # the zone reports every side change
    ([50, 50, 60], "..."),  # first side seen is beyond: no crossing
]


@pytest.mark.parametrize(("ys", "expected"), LINE_TABLE)
def test_line_trigger_table(ys, expected) -> None:
    line = LineZone((0, 50), (100, 50), (0, 1), hysteresis_px=2.0)
    out = ""
    for y in ys:
        c_in, c_out = line.trigger([1], [[30, y]])
        out += "i" if c_in[0] else "o" if c_out[0] else "."
    assert out == expected


def test_line_trigger_vectorised_many_tracks() -> None:
    line = LineZone((0, 50), (100, 50), (0, 1), hysteresis_px=1.0)
    ids = np.arange(1000)
    x = np.linspace(1, 99, 1000)
    line.trigger(ids, np.stack([x, np.full(1000, 40.0)], 1))
    y2 = np.where(ids % 3 == 0, 60.0, np.where(ids % 3 == 1, 50.5, 40.0))
    c_in, c_out = line.trigger(ids, np.stack([x, y2], 1))
    assert np.array_equal(c_in, ids % 3 == 0)
    assert not c_out.any()
    line.forget(ids[:500])
    assert len(line) == 500
    line.reset()
    assert len(line) == 0


def test_lookup_rows() -> None:
    ids = np.array([7, 3, 9], np.int64)
    rows, found = lookup_rows(ids, np.array([9, 4, 7, 100], np.int64))
    assert found.tolist() == [True, False, True, False]
    assert rows[found].tolist() == [2, 0]


def test_select_births_aligns_with_select_tracks() -> None:
    """Births come back for exactly the rows select_tracks keeps, in its order."""
    boxes = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], float)
    det = Detections(
        xyxy=boxes,
        confidence=np.full(3, 0.9),
        class_id=np.array([0, 2, 0]),
        tracker_id=np.array([7, 8, 9]),
        data={"birth_xyxy": boxes - 5.0, "birth_mono": np.array([1.0, 2.0, 3.0])},
    )
    wanted = np.array([0])
    tids, *_ = select_tracks(det, wanted, "bottom_center")
    births = select_births(det, wanted)
    assert births is not None
    assert tids.tolist() == [7, 9]
    assert births[0].tolist() == (boxes[[0, 2]] - 5.0).tolist()
    assert births[1].tolist() == [1.0, 3.0]
    plain = Detections(
        xyxy=boxes, confidence=np.ones(3), class_id=np.zeros(3), tracker_id=[1, 2, 3]
    )
    assert select_births(plain, wanted) is None
    assert select_births(object(), wanted) is None
