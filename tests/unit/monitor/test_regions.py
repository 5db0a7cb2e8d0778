"""Region planning and the detection gate."""

from __future__ import annotations

import numpy as np
import pytest

from config.schema import GatingConfig, MotionConfig
from monitor.motion import MotionDetector
from monitor.nms import batched_nms
from monitor.regions import (
    DetectionGate,
    GateDecision,
    Plan,
    detect_plan,
    plan_regions,
)
from monitor.types import Detections, Frame


def test_plan_empty() -> None:
    assert plan_regions(np.zeros((0, 4), np.float32), (1280, 720), 416).shape == (0, 4)


@pytest.mark.parametrize(
    ("boxes", "max_regions", "n"),
    [
        ([[100, 100, 150, 200]], 4, 1),
        ([[100, 100, 150, 200], [130, 120, 180, 220]], 4, 1),  # overlap → merged
        ([[10, 10, 50, 50], [1200, 600, 1250, 700]], 4, 2),  # far apart
        ([[10, 10, 50, 50], [1200, 600, 1250, 700]], 1, 1),  # forced into one
    ],
)
def test_plan_regions(boxes: list, max_regions: int, n: int) -> None:
    b = np.asarray(boxes, np.float32)
    r = plan_regions(b, (1280, 720), 416, max_regions=max_regions)
    assert len(r) == n
    assert (r[:, 0] >= 0).all() and (r[:, 1] >= 0).all()
    assert (r[:, 2] <= 1280).all() and (r[:, 3] <= 720).all()
    side = np.minimum(r[:, 2] - r[:, 0], r[:, 3] - r[:, 1])
    assert (side >= 416).all()
    # every box lies inside some region
    for x1, y1, x2, y2 in b:
        assert any(
            rx1 <= x1 and ry1 <= y1 and rx2 >= x2 and ry2 >= y2
            for rx1, ry1, rx2, ry2 in r
        )


def test_nms_class_aware() -> None:
    xyxy = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10]], np.float32)
    keep = batched_nms(
        xyxy, np.array([0.9, 0.8, 0.7], np.float32), np.array([0, 0, 2]), 0.5
    )
    assert sorted(keep.tolist()) == [0, 2]


class _Recorder:
    """A stand-in detector that returns one fixed box per input image and records
    the image shapes it was called with (the real detector is tested elsewhere)."""

    input_size = (416, 416)

    def __init__(self) -> None:
        self.calls: list[list[tuple[int, ...]]] = []

    def detect(self, image: np.ndarray) -> Detections:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        self.calls.append([im.shape for im in images])
        return [
            Detections(xyxy=[[5, 5, 25, 45]], confidence=[0.9], class_id=[0])
            for _ in images
        ]


def frame(mono: float, image: np.ndarray) -> Frame:
    return Frame("cam", int(mono * 10), 1e9 + mono, mono, image)


def test_detect_plan_maps_boxes_back() -> None:
    det = _Recorder()
    img = np.zeros((720, 1280, 3), np.uint8)
    dec = GateDecision(
        Plan.REGIONS, np.array([[600, 200, 1016, 616]], np.int32), None, "t"
    )
    out = detect_plan(det, frame(0, img), dec)
    assert out is not None and out.xyxy.tolist() == [[605, 205, 625, 245]]
    assert det.calls == [[(416, 416, 3)]]
    assert (
        detect_plan(det, frame(0, img), GateDecision(Plan.SKIP, dec.regions, None, ""))
        is None
    )


def test_gate_sequence_idle_motion_refresh() -> None:
    """Frame-by-frame: learn → idle skip → motion → regions → periodic full refresh."""
    gate = DetectionGate(
        GatingConfig(full_frame_interval_s=2.0), MotionDetector(MotionConfig()), 416
    )
    rng = np.random.default_rng(0)
    bg = rng.integers(50, 200, (720, 1280, 3)).astype(np.uint8)
    moving = bg.copy()
    moving[300:420, 200:260] = 0
    table = [
        (0.0, bg, None, Plan.FULL),  # first frame: refresh due
        (0.2, bg, None, Plan.SKIP),
        (0.4, bg, None, Plan.SKIP),
        (0.6, moving, None, Plan.REGIONS),
        (0.8, bg, Detections(xyxy=[[200, 300, 260, 420]], confidence=[1], class_id=[0]),
         Plan.REGIONS),  # tracked object keeps a region even without motion
        (2.1, bg, None, Plan.FULL),  # refresh interval
    ]  # fmt: skip
    for mono, img, tracked, expected in table:
        d = gate.update(frame(mono, img), tracked)
        assert d.plan is expected, (mono, d.reason)
        if d.plan is Plan.REGIONS:
            x1, y1, x2, y2 = d.regions[0]
            assert x1 <= 200 and x2 >= 260 and y1 <= 300 and y2 >= 420


def test_gate_full_mode_always_full() -> None:
    gate = DetectionGate(GatingConfig(mode="full"), MotionDetector(MotionConfig()), 416)
    img = np.zeros((100, 100, 3), np.uint8)
    assert all(
        gate.update(frame(t, img), None).plan is Plan.FULL for t in (0, 0.1, 0.2)
    )


def test_gate_rule_areas_only() -> None:
    """regions + restrict_to_rules: crops only where a rule looks; motion elsewhere
    is ignored; a refresh detects every area even when idle."""
    cfg = GatingConfig(full_frame_interval_s=2.0, rule_margin=0.0)
    area = np.array([[0.1, 0.4, 0.3, 0.7]], np.float32)  # a zone on the left
    gate = DetectionGate(cfg, MotionDetector(MotionConfig()), 416, area)
    rng = np.random.default_rng(0)
    bg = rng.integers(50, 200, (720, 1280, 3)).astype(np.uint8)
    right = bg.copy()
    right[300:420, 1000:1060] = 0  # motion far from the zone
    left = bg.copy()
    left[350:450, 200:250] = 0  # motion inside the zone
    table = [
        (0.0, bg, Plan.REGIONS, "refresh"),
        (0.2, bg, Plan.SKIP, "idle"),
        (0.4, right, Plan.SKIP, "idle-areas"),
        (0.6, left, Plan.REGIONS, "rule-areas"),
        (2.5, bg, Plan.REGIONS, "refresh"),
    ]
    for mono, img, plan, reason in table:
        d = gate.update(frame(mono, img), None)
        assert (d.plan, d.reason) == (plan, reason), mono
        if plan is Plan.REGIONS:
            ((x1, y1, x2, y2),) = d.regions
            assert x1 <= 128 and x2 >= 384 and y1 <= 288 and y2 >= 504  # zone in crop
            assert x2 - x1 == 416  # native resolution: no downscale


def test_gate_watches_the_whole_crop_of_an_area() -> None:
    """Regression: vehicles approaching a counting line were only detected once their
    motion touched the thin line band, so they were first tracked already across the
    line and never counted (road_traffic.mp4: 28 instead of 32 at full frame)."""
    cfg = GatingConfig(full_frame_interval_s=100.0, rule_margin=0.0)
    line_band = np.array([[0.2, 0.54, 0.9, 0.56]], np.float32)  # a horizontal line
    gate = DetectionGate(cfg, MotionDetector(MotionConfig()), 416, line_band)
    rng = np.random.default_rng(1)
    bg = rng.integers(50, 200, (360, 640, 3)).astype(np.uint8)
    approaching = bg.copy()
    approaching[300:350, 300:360] = 0  # a car near the bottom, below the line band
    assert gate.update(frame(0.0, bg), None).reason == "refresh"
    assert gate.update(frame(0.2, bg), None).plan is Plan.SKIP
    d = gate.update(frame(0.4, approaching), None)
    assert d.plan is not Plan.SKIP and d.reason == "rule-areas"  # the detector runs


@pytest.mark.parametrize(
    ("wh", "line", "plan", "crop_w"),
    [
        # 640x360, line x 0.2-0.9: a 512x360 crop (80 % of the frame) is seen
        # 1.25x larger than the letterboxed frame: kept (it used to become a full
        # pass: road_traffic.mp4 then counted 33 of 36 at 5/s, 35 with the crop).
        ((640, 360), (0.2, 0.55, 0.9, 0.55), Plan.REGIONS, 512),
        # 1280x720 bridge, line x 0.2-0.8: 896x720, 1.43x (bridge_traffic.mp4: 2 of 6
        # counted at full frame, 6 of 6 in the crop).
        ((1280, 720), (0.2, 0.6, 0.8, 0.6), Plan.REGIONS, 896),
        # A line across almost the whole width: 1.04x, not worth cutting objects.
        ((640, 360), (0.02, 0.5, 0.98, 0.5), Plan.FULL, 0),
    ],
)
def test_gate_single_rule_crop_kept_while_it_zooms_in(
    wh: tuple[int, int], line: tuple[float, ...], plan: Plan, crop_w: int
) -> None:
    """Bug: one crop covering >= max_region_frac of the frame became a full-frame
    pass. It costs the same one inference, and the crop shows vehicles larger:
    now only a crop zooming in less than min_region_zoom (1.1x) becomes a full pass."""
    gate = DetectionGate(GatingConfig(rule_margin=0.05), MotionDetector(MotionConfig()), 416,
                         np.array([line], np.float32))  # fmt: skip
    d = gate.update(frame(0.0, np.zeros((wh[1], wh[0], 3), np.uint8)), None)
    assert d.plan is plan and d.reason == "refresh"
    if plan is Plan.REGIONS:
        ((x1, y1, x2, y2),) = d.regions
        assert x2 - x1 == pytest.approx(crop_w, abs=2) and (y1, y2) == (0, wh[1])


@pytest.mark.parametrize(("frac", "plan"), [(0.4, Plan.REGIONS), (0.35, Plan.FULL)])
def test_gate_several_crops_over_max_region_frac_are_a_full_pass(
    frac: float, plan: Plan
) -> None:
    """Several crops cost one inference each: two 416x416 crops cover 37.6 % of a
    1280x720 frame, a full pass once that is over max_region_frac."""
    cfg = GatingConfig(rule_margin=0.05, max_regions=2, max_region_frac=frac)
    areas = np.array([[0.05, 0.2, 0.2, 0.3], [0.8, 0.7, 0.95, 0.8]], np.float32)
    gate = DetectionGate(cfg, MotionDetector(MotionConfig()), 416, areas)
    d = gate.update(frame(0.0, np.zeros((720, 1280, 3), np.uint8)), None)
    assert d.plan is plan and len(d.regions) == (2 if plan is Plan.REGIONS else 0)


def _parked(tid: int = 7, dx: float = 0.0) -> Detections:
    return Detections(
        xyxy=[[200 + dx, 300, 260 + dx, 420]],
        confidence=[0.9],
        class_id=[2],
        tracker_id=[tid],
    )


def test_gate_stationary_track_is_only_rechecked() -> None:
    """Regression: a parked car tracked in a rule area kept a quiet camera detecting on
    every sample forever (campus capacity bench: one or two quiet cameras per run at
    5 detections/s). After ``stationary_after_s`` it is re-detected every
    ``stationary_check_s`` only; when it moves it counts again at once."""
    cfg = GatingConfig(
        full_frame_interval_s=100.0,
        rule_margin=0.0,
        stationary_after_s=1.0,
        stationary_check_s=0.6,
    )
    area = np.array([[0.1, 0.4, 0.3, 0.7]], np.float32)
    gate = DetectionGate(cfg, MotionDetector(MotionConfig()), 416, area)
    bg = np.random.default_rng(0).integers(50, 200, (720, 1280, 3)).astype(np.uint8)
    table = [
        (0.0, _parked(), "refresh"),
        (0.2, _parked(), "rule-areas"),  # tracked, not yet stationary
        (0.8, _parked(dx=2), "rule-areas"),  # jitter under 10 % of its size
        (1.0, _parked(), "rule-areas"),  # stationary now: first check is due
        (1.2, _parked(), "idle"),
        (1.4, _parked(), "idle"),
        (1.6, _parked(), "rule-areas"),  # 0.6 s later: re-check keeps the track
        (1.8, _parked(), "idle"),
        (2.0, _parked(dx=30), "rule-areas"),  # it drives off: active again at once
        (2.2, _parked(dx=60), "rule-areas"),
        (2.4, None, "idle"),  # gone
    ]
    got = [(t, gate.update(frame(t, bg), tr).reason) for t, tr, _ in table]
    assert got == [(t, r) for t, _, r in table]


def test_gate_stationary_off_and_state_is_bounded() -> None:
    """``stationary_after_s: 0`` keeps the old behaviour; per-id state only holds the
    ids of the current tracks (300 passing ids leave 1 row)."""
    area = np.array([[0.1, 0.4, 0.3, 0.7]], np.float32)
    off = DetectionGate(
        GatingConfig(full_frame_interval_s=100.0, stationary_after_s=0.0),
        MotionDetector(MotionConfig()),
        416,
        area,
    )
    bg = np.zeros((720, 1280, 3), np.uint8)
    reasons = {off.update(frame(t / 5, bg), _parked()).reason for t in range(1, 30)}
    assert reasons == {"refresh", "rule-areas"}
    on = DetectionGate(GatingConfig(), MotionDetector(MotionConfig()), 416, area)
    for i in range(300):
        on.update(frame(i / 5, bg), _parked(tid=i + 1))
    assert on._st_ids.tolist() == [300]  # noqa: SLF001
