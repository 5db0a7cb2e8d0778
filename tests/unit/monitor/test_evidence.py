"""EvidenceRecorder: ring buffer bounds, snapshots, clip timing and MP4 layout.

Clips are really encoded (imageio-ffmpeg's libx264) from small synthetic frames whose
grey level encodes which input frame they are, so decoded clips can be checked
frame by frame against the timestamps they were fed with.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

from config.schema import EvidenceConfig
from monitor.events import (
    CameraHealthPayload,
    Event,
    EventKind,
    EventState,
    media_name,
)
from monitor.evidence import EvidenceRecorder, _resample, encode_clip
from monitor.types import Detections, Frame

CAM = "lobby-2"
T0, M0 = 1_780_000_000.0, 100.0  # wall and monotonic clocks differ on purpose


def _frame(
    i: int, t: float, w: int = 160, h: int = 120, level: int | None = None
) -> Frame:
    img = np.full((h, w, 3), (i * 10) % 250 if level is None else level, np.uint8)
    return Frame(CAM, i, T0 + t, M0 + t, img)


def _event(t: float) -> Event:
    ts = dt.datetime.fromtimestamp(T0 + t, dt.UTC)
    return Event.new(
        camera_id=CAM,
        kind=EventKind.CAMERA_HEALTH,
        state=EventState.INSTANT,
        ts=ts,
        started_at=ts,
        payload=CameraHealthPayload(status="tamper"),
    )


def _wait_poll(rec: EvidenceRecorder, timeout_s: float = 30.0) -> list[Event]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = rec.poll()
        if out:
            return out
        time.sleep(0.02)
    return []


def _cfg(**kw: float) -> EvidenceConfig:
    base = {"buffer_s": 10.0, "buffer_width": 640, "pre_s": 1.0, "post_s": 1.0}
    base.update(kw)
    return EvidenceConfig(**base)  # type: ignore[arg-type]


# ----------------------------------------------------------------- ring buffer
@pytest.mark.parametrize(
    ("fps", "seconds", "buffer_s", "max_frames", "max_bytes", "expect"),
    [
        (10.0, 30.0, 5.0, 900, 1 << 30, 51),  # time bound: 5 s at 10 fps (+ edge)
        (30.0, 10.0, 10.0, 20, 1 << 30, 20),  # hard frame cap wins
        (10.0, 10.0, 10.0, 900, 160 * 120 * 3 * 7, 7),  # byte budget wins
        (10.0, 3.0, 0.0, 900, 1 << 30, 1),  # buffer_s 0 keeps the newest only
    ],
)
def test_buffer_is_bounded_by_time_frames_and_bytes(
    tmp_path: Path,
    fps: float,
    seconds: float,
    buffer_s: float,
    max_frames: int,
    max_bytes: int,
    expect: int,
) -> None:
    rec = EvidenceRecorder(
        CAM,
        _cfg(buffer_s=buffer_s),
        tmp_path,
        max_frames=max_frames,
        max_bytes=max_bytes,
    )
    n = int(seconds * fps)
    for i in range(n):
        rec.push(_frame(i, i / fps))
    st = rec.stats()
    assert st.buffered_frames == expect
    assert st.buffered_bytes == expect * 160 * 120 * 3
    rec.close()


@pytest.mark.parametrize(
    ("src_wh", "buffer_width", "expect_wh"),
    [
        ((1920, 1080), 640, (640, 360)),
        ((1280, 720), 501, (500, 282)),  # odd width: even sizes for yuv420p
        ((320, 240), 640, (320, 240)),  # never upscaled
    ],
)
def test_push_downscales_to_even_size(
    tmp_path: Path,
    src_wh: tuple[int, int],
    buffer_width: int,
    expect_wh: tuple[int, int],
) -> None:
    rec = EvidenceRecorder(CAM, _cfg(buffer_width=buffer_width), tmp_path)
    rec.push(_frame(0, 0.0, *src_wh))
    w, h = expect_wh
    assert rec.stats().buffered_bytes == w * h * 3


def test_frame_going_back_in_time_is_not_buffered(tmp_path: Path) -> None:
    rec = EvidenceRecorder(CAM, _cfg(), tmp_path)
    rec.push(_frame(0, 1.0))
    rec.push(_frame(1, 0.5))
    assert rec.stats().buffered_frames == 1


@pytest.mark.parametrize("bad", ["../etc", "", "a/b", ".hidden", "x" * 65])
def test_unsafe_camera_id_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="camera id"):
        EvidenceRecorder(bad, _cfg(), tmp_path)


def test_other_cameras_frames_and_events_are_refused(tmp_path: Path) -> None:
    rec = EvidenceRecorder(CAM, _cfg(), tmp_path)
    f = Frame("other", 0, T0, M0, np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="other"):
        rec.push(f)
    ev = _event(0).model_copy(update={"camera_id": "other"})
    with pytest.raises(ValueError, match="other"):
        rec.snapshot(ev, _frame(0, 0))


# -------------------------------------------------------------------- snapshots
def test_snapshot_full_res_with_sha256_and_box_overlay(tmp_path: Path) -> None:
    rec = EvidenceRecorder(CAM, _cfg(buffer_width=64), tmp_path)
    frame = _frame(0, 0.0, 640, 480, level=128)
    ev = _event(0.0)
    dets = Detections(
        xyxy=np.array([[10, 10, 50, 60], [300, 200, 400, 300]], np.float32),
        confidence=np.array([0.9, 0.8], np.float32),
        class_id=np.array([0, 0]),
    )
    refs = rec.snapshot(ev, frame, dets, (300.0, 200.0, 400.0, 300.0))
    assert [r.role for r in refs] == ["snapshot", "snapshot_boxes"]
    assert refs[0].path == media_name(CAM, ev.event_id, "", "jpg")
    assert refs[1].path == media_name(CAM, ev.event_id, "boxes", "jpg")
    for r in refs:
        data = (tmp_path / r.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == r.sha256 and len(data) == r.bytes
    plain = cv2.imread(str(tmp_path / refs[0].path))
    boxes = cv2.imread(str(tmp_path / refs[1].path))
    assert plain.shape == boxes.shape == (480, 640, 3)  # full resolution, not buffer
    # Red (BGR) highlight on the box edge; untouched grey well inside it.
    edge = boxes[200:203, 320:380].reshape(-1, 3).mean(axis=0)
    assert edge[2] > 180 and edge[0] < 80, edge
    assert abs(int(boxes[250, 350, 0]) - 128) < 8
    assert abs(plain[200:203, 320:380].astype(int) - 128).max() < 8
    # no temp files left behind
    assert sorted(p.name for p in (tmp_path / CAM).iterdir()) == sorted(
        Path(r.path).name for r in refs
    )


def test_snapshot_without_box_writes_one_file_and_bad_box_is_skipped(
    tmp_path: Path,
) -> None:
    """A NaN box (bug: int cast of NaN drew garbage) must not cost the snapshot."""
    rec = EvidenceRecorder(CAM, _cfg(), tmp_path)
    (only,) = rec.snapshot(_event(0), _frame(0, 0.0))
    assert only.role == "snapshot"
    refs = rec.snapshot(_event(0), _frame(0, 0.0), None, (float("nan"), 0.0, 5.0, 5.0))
    assert [r.role for r in refs] == ["snapshot"]


# ------------------------------------------------------------------------ clips
@pytest.mark.parametrize(
    ("monos", "fps", "end", "expect"),
    [
        ([0.0, 0.1, 0.2, 0.3], 10.0, 0.4, [0, 1, 2, 3]),
        ([0.0, 0.3], 10.0, 0.5, [0, 0, 0, 1, 1]),  # a gap repeats the last frame
        ([0.0, 0.05, 0.1, 0.2], 10.0, 0.3, [0, 2, 3]),  # faster input is thinned
        ([0.0, 0.149, 0.151], 10.0, 0.3, [0, 0, 2]),
    ],
)
def test_resample_picks_latest_frame_at_each_tick(
    monos: list[float], fps: float, end: float, expect: list[int]
) -> None:
    assert _resample(np.array(monos), fps, end).tolist() == expect


def _top_level_boxes(path: Path) -> list[str]:
    data = path.read_bytes()
    out, off = [], 0
    while off + 8 <= len(data):
        size, typ = struct.unpack(">I4s", data[off : off + 8])
        if size == 1:
            size = struct.unpack(">Q", data[off + 8 : off + 16])[0]
        elif size == 0:
            size = len(data) - off
        out.append(typ.decode("latin-1"))
        off += size
    return out


def _decoded_levels(path: Path) -> list[int]:
    cap = cv2.VideoCapture(str(path))
    levels = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        levels.append(int(round(float(img.mean()))))
    cap.release()
    return levels


def test_clip_waits_for_post_s_by_mono_and_follows_timestamps(tmp_path: Path) -> None:
    """Frames at irregular times: the clip shows each for as long as it was current."""
    rec = EvidenceRecorder(CAM, _cfg(pre_s=1.0, post_s=1.0), tmp_path)
    # 5 fps with a 0.6 s gap (dropped frames) after the event.
    times = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.8, 2.0, 2.2, 2.4]
    levels = [20 * (k + 1) for k in range(len(times))]
    ev = None
    for k, (t, lv) in enumerate(zip(times, levels, strict=True)):
        rec.push(_frame(k, t, level=lv))
        if t == 1.0:
            ev = _event(1.0)
            rec.request_clip(ev)
        if t < 2.0:
            time.sleep(0.05 if t > 1.0 else 0)
            assert rec.poll() == [], f"clip finished before post_s (t={t})"
    assert ev is not None
    (done,) = _wait_poll(rec)
    assert done.event_id == ev.event_id and done.revision == ev.revision
    (ref,) = done.media
    path = tmp_path / ref.path
    assert ref.role == "clip" and ref.path == media_name(CAM, ev.event_id, "", "mp4")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == ref.sha256
    assert ref.duration_s == pytest.approx(2.0)  # [0.0, 2.0] at 5 fps
    boxes = _top_level_boxes(path)
    assert boxes.index("moov") < boxes.index("mdat"), boxes  # faststart
    got = _decoded_levels(path)
    # ticks 0.0..1.8: frames at 0.0 .. 1.2, then 1.2 repeated over the gap, then 1.8
    expect = [levels[i] for i in (0, 1, 2, 3, 4, 5, 6, 6, 6, 7)]
    assert len(got) == len(expect)
    # levels 20 apart; a few levels of YUV range rounding are expected
    assert np.abs(np.array(got) - np.array(expect)).max() <= 6, (got, expect)
    rec.close()


def test_close_encodes_pending_clip_with_frames_it_has(tmp_path: Path) -> None:
    rec = EvidenceRecorder(CAM, _cfg(pre_s=0.5, post_s=5.0), tmp_path)
    for k in range(8):
        rec.push(_frame(k, k * 0.1))
        if k == 5:
            rec.request_clip(_event(0.5))
    assert rec.poll() == []
    rec.close()
    (done,) = rec.poll()
    (ref,) = done.media
    assert (tmp_path / ref.path).is_file()
    assert ref.duration_s is not None and 0.6 <= ref.duration_s <= 1.9


def test_clips_disabled_requests_nothing(tmp_path: Path) -> None:
    cfg = EvidenceConfig(pre_s=0.0, post_s=0.0, clips=False)
    rec = EvidenceRecorder(CAM, cfg, tmp_path)
    rec.push(_frame(0, 0.0))
    rec.request_clip(_event(0.0))
    rec.push(_frame(1, 1.0))
    rec.close()
    assert rec.poll() == [] and rec.stats().clips_encoded == 0


def test_encode_clip_resizes_a_resolution_change_and_reports_cpu(
    tmp_path: Path,
) -> None:
    frames = [
        np.full((120, 160, 3), 50, np.uint8),
        np.full((90, 200, 3), 200, np.uint8),
    ]
    out = tmp_path / f"{uuid.uuid4()}.mp4"
    duration, cpu = encode_clip(frames, np.array([0.0, 0.5]), out, end_mono=1.0)
    assert duration == pytest.approx(1.0)
    assert cpu > 0
    cap = cv2.VideoCapture(str(out))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (
        160,
        120,
    )
    cap.release()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_encode_clip_without_frames_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no frames"):
        encode_clip([], np.zeros(0), tmp_path / "x.mp4")


def test_pending_clips_are_bounded_and_counted(tmp_path: Path) -> None:
    rec = EvidenceRecorder(CAM, _cfg(pre_s=0.0, post_s=60.0), tmp_path)
    rec.push(_frame(0, 0.0))
    for _ in range(33):
        rec.request_clip(_event(0.0))
    assert rec.stats().clips_dropped == 1
    rec.close(timeout_s=30)
    assert len(rec.poll()) == 32
