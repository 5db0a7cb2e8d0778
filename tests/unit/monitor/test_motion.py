"""Motion detection: frame-by-frame sequences of synthetic and real frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from config.schema import MotionConfig
from monitor.motion import MotionDetector
from tests.conftest import require_shared

H, W = 360, 640


def scene(seed: int = 0, noise: float = 0.0, gain: float = 1.0, box=None) -> np.ndarray:
    """A textured static background, optional sensor noise, gain and a dark box."""
    rng = np.random.default_rng(1234)
    base = (rng.integers(60, 200, (H // 8, W // 8, 3))).astype(np.float32)
    img = cv2.resize(base, (W, H), interpolation=cv2.INTER_NEAREST) * gain
    if noise:
        img += np.random.default_rng(seed).normal(0, noise, img.shape)
    if box is not None:
        x1, y1, x2, y2 = box
        img[y1:y2, x1:x2] = 10
    return np.clip(img, 0, 255).astype(np.uint8)


def run(frames: list[np.ndarray], cfg: MotionConfig | None = None):
    m = MotionDetector(cfg or MotionConfig())
    return [m.update(f) for f in frames]


def test_first_frame_learns_background() -> None:
    assert not run([scene()])[0].any


def test_static_noisy_scene_has_no_motion() -> None:
    res = run([scene(seed=i, noise=6.0) for i in range(20)])
    assert not any(r.any for r in res[1:])


def test_moving_box_is_found_where_it_is() -> None:
    frames = [scene()] + [
        scene(box=(100 + 20 * i, 150, 160 + 20 * i, 250)) for i in range(5)
    ]
    res = run(frames)
    last = res[-1]
    assert len(last.boxes) >= 1 and not last.scene_change
    x1, y1, x2, y2 = last.boxes[np.argmax(last.boxes[:, 2] - last.boxes[:, 0])]
    # the box (180..240, 150..250) is inside the reported region (small-grid slack)
    assert x1 <= 180 + 8 and x2 >= 240 - 8 and y1 <= 150 + 8 and y2 >= 250 - 8


@pytest.mark.parametrize("gain", [0.6, 1.5])
def test_global_lighting_change_is_not_motion(gain: float) -> None:
    """Auto-exposure/lights: a uniform gain change yields no motion boxes."""
    res = run([scene(), scene(), scene(gain=gain), scene(gain=gain)])
    assert all(len(r.boxes) == 0 for r in res)


def test_scene_change_reported_and_relearned() -> None:
    # A different coarse texture: the camera was moved or something covers it.
    coarse = np.random.default_rng(99).choice([20, 235], (H // 40, W // 40, 3))
    other = cv2.resize(coarse.astype(np.uint8), (W, H), interpolation=cv2.INTER_NEAREST)
    res = run([scene(), other, other])
    assert res[1].scene_change and len(res[1].boxes) == 0
    assert not res[2].any  # background re-learned


def test_mask_ignores_region() -> None:
    frames = [scene()] + [
        scene(box=(100 + 20 * i, 150, 160 + 20 * i, 250)) for i in range(4)
    ]
    masked = MotionConfig(mask=(((0.0, 0.0), (0.6, 0.0), (0.6, 1.0), (0.0, 1.0)),))
    assert not run(frames, masked)[-1].any
    assert run(frames)[-1].any


def test_resolution_change_resets() -> None:
    m = MotionDetector(MotionConfig())
    m.update(scene())
    r = m.update(cv2.resize(scene(), (320, 180)))
    assert not r.any


def test_real_video_people_move() -> None:
    video = require_shared("data/videos/concourse_people.avi")
    cap = cv2.VideoCapture(str(video))
    m = MotionDetector(MotionConfig())
    found = 0
    for _ in range(30):
        ok, f = cap.read()
        assert ok
        found += int(len(m.update(f).boxes) > 0)
    assert found >= 25  # ~40 people walk in every frame


def _ghost_run(with_time: bool) -> list[bool]:
    """A car parked for 20 s is learnt into the background, then drives off; returns
    per 0.2 s sample after it left whether motion is reported."""
    det = MotionDetector(MotionConfig(absorb_after_s=1.0))
    rng = np.random.default_rng(3)
    empty = rng.integers(90, 110, (180, 320, 3)).astype(np.uint8)
    parked = empty.copy()
    parked[60:120, 100:180] = 10  # dark car
    t = 0.0
    for _ in range(100):  # 20 s at 5/s: the car becomes background
        det.update(parked, t if with_time else None)
        t += 0.2
    out = []
    for _ in range(50):  # 10 s after it left
        out.append(det.update(empty, t if with_time else None).any)
        t += 0.2
    return out


def test_ghost_of_a_departed_car_fades() -> None:
    """Regression: the vacated pixels of a car that left were learnt 10x slower
    (they read as "moving"), so a quiet camera kept detecting for ~20 s after
    traffic (campus capacity bench). With frame times, pixels moving longer than
    ``absorb_after_s`` are learnt at the normal rate."""
    fades = _ghost_run(with_time=True)
    stays = _ghost_run(with_time=False)
    assert fades[0] and stays[0]  # the ghost appears at once either way
    assert not any(fades[20:])  # gone within 4 s
    assert all(stays[:40])  # without times: still "moving" after 8 s
