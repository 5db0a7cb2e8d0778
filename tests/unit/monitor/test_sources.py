"""Video file sources: deterministic replay and live (reader thread) playback."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from config.schema import CameraConfig
from monitor.sources import ReplaySource, SourceError, open_source
from tests.conftest import require_shared


def _cam(path: str, **source) -> CameraConfig:
    return CameraConfig(id="c1", source={"url": str(path), **source})


def _replay(path, fps=5.0, limit=2000, **source) -> list:
    src = open_source(_cam(path, **source), str(path), replay=True, sample_fps=fps)
    out = []
    while len(out) < limit and (f := src.read(0)) is not None:
        out.append(f)
    return out, src


@pytest.mark.parametrize(
    ("name", "fps", "n", "step", "seconds"),
    [
        # 25 fps file sampled at 5/s: every 5th frame, 0.2 video s apart
        ("road_traffic.mp4", 5.0, 238, 5, 47.4),
        ("bridge_traffic.mp4", 10.0, 48, 3, 4.7),
    ],
)
def test_replay_samples_by_video_timestamp(name, fps, n, step, seconds) -> None:
    frames, src = _replay(require_shared(f"data/videos/{name}"), fps)
    assert len(frames) == n
    seqs = np.array([f.seq for f in frames])
    monos = np.array([f.mono for f in frames])
    assert np.diff(seqs).mean() == pytest.approx(step, rel=0.02)
    # Durations are video seconds, whatever the processing speed.
    assert np.allclose(np.diff(monos), 1 / fps, atol=0.021)
    assert monos[-1] - monos[0] == pytest.approx(seconds, abs=0.1)
    assert np.allclose(np.diff([f.ts for f in frames]), np.diff(monos))
    assert src.ended and src.stats().state == "ended"


def test_replay_wrong_header_count_is_explained() -> None:
    """Regression: concourse_people.avi announces 682 frames, 341 decode."""
    frames, src = _replay(require_shared("data/videos/concourse_people.avi"), 5.0)
    err = src.stats().last_error
    assert "341 decodable frames" in err and "682" in err
    # Timestamps run at 25 fps although the header says 50: every 5th frame at 5/s.
    assert len(frames) == 68 and frames[-1].seq == 335
    assert np.allclose(np.diff([f.mono for f in frames]), 0.2, atol=0.021)


def test_replay_is_deterministic() -> None:
    path = require_shared("data/videos/bridge_traffic.mp4")
    a, _ = _replay(path, 5.0)
    b, _ = _replay(path, 5.0)
    assert [f.seq for f in a] == [f.seq for f in b]
    assert all(
        np.array_equal(x.image, y.image) for x, y in zip(a[::7], b[::7], strict=True)
    )


def test_replay_loop_keeps_time_increasing() -> None:
    path = require_shared("data/videos/bridge_traffic.mp4")
    src = ReplaySource("c1", str(path), sample_fps=5.0, loop=True)
    frames = [src.read() for _ in range(32)]  # 144 frames at 30 fps = 4.8 s/loop
    monos = np.array([f.mono for f in frames])
    assert np.all(np.diff(monos) > 0.15) and np.all(np.diff(monos) < 0.25)
    assert not src.ended
    assert monos[-1] - monos[0] == pytest.approx(31 * 0.2, abs=0.25)
    assert frames[-1].seq > 144  # went round


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> dict[str, Path]:
    """Truncated, garbage and empty files, and a stream changing resolution."""
    import imageio_ffmpeg

    ff = imageio_ffmpeg.get_ffmpeg_exe()
    road = require_shared("data/videos/road_traffic.mp4")
    d = tmp_path_factory.mktemp("broken")
    out = {"garbage": d / "garbage.mp4", "empty": d / "empty.mp4"}
    out["garbage"].write_bytes(np.random.default_rng(0).bytes(200_000))
    out["empty"].write_bytes(b"")
    # moov atom at the end: a cut file keeps its index only if it was faststart
    out["cut_tail"] = d / "cut_tail.mp4"
    out["cut_tail"].write_bytes(road.read_bytes()[:700_000])
    fs = d / "fs.mp4"
    enc = [ff, "-v", "error", "-y", "-i", str(road), "-t", "2", "-c:v", "libx264",
           "-preset", "ultrafast"]  # fmt: skip
    subprocess.run([*enc, "-movflags", "+faststart", str(fs)], check=True)
    out["cut_faststart"] = d / "cut_fs.mp4"
    out["cut_faststart"].write_bytes(fs.read_bytes()[: fs.stat().st_size // 2])
    a, b = d / "a.ts", d / "b.ts"
    subprocess.run([*enc[:-4], "-t", "1", "-c:v", "libx264", "-preset", "ultrafast",
                    "-f", "mpegts", str(a)], check=True)  # fmt: skip
    subprocess.run([*enc[:-4], "-t", "1", "-vf", "scale=320:180", "-c:v", "libx264",
                    "-preset", "ultrafast", "-f", "mpegts", str(b)], check=True)  # fmt: skip
    out["res_change"] = d / "res_change.ts"
    out["res_change"].write_bytes(a.read_bytes() + b.read_bytes())
    return out


@pytest.mark.parametrize(
    ("which", "expect"),
    [
        ("garbage", "cannot be decoded"),
        ("empty", "is empty"),
        ("missing", "does not exist"),
    ],
)
def test_replay_unreadable_file_raises_clear_error(broken, which, expect) -> None:
    path = broken.get(which, Path("/nonexistent/cam.mp4"))
    with pytest.raises(SourceError, match=expect):
        open_source(_cam(path), str(path), replay=True, sample_fps=5)


@pytest.mark.parametrize("which", ["cut_tail", "cut_faststart"])
def test_replay_truncated_file_ends_with_message(broken, which) -> None:
    frames, src = _replay(broken[which], 5.0)
    assert 0 < len(frames)
    assert src.ended
    assert "truncated file or wrong header" in src.stats().last_error


def test_resolution_change_in_file_does_not_break(broken) -> None:
    """OpenCV's FFmpeg backend scales frames after a mid-stream resolution change
    to the size it opened with: every frame keeps one shape, none is lost."""
    frames, src = _replay(broken["res_change"], None)
    assert len(frames) == 50
    assert {f.image.shape for f in frames} == {(360, 640, 3)}


def test_replay_refuses_network_source() -> None:
    with pytest.raises(SourceError, match="replay needs a video file"):
        open_source(_cam("rtsp://h/x"), "rtsp://h/x", replay=True)


# ----------------------------------------------------------------- live files
def test_live_file_realtime_pacing_and_dropping() -> None:
    """realtime=True plays at the native 25 fps; a 5/s consumer gets the newest
    frame each time and the others are counted as dropped."""
    path = require_shared("data/videos/road_traffic.mp4")
    src = open_source(_cam(path, realtime=True, loop=True), str(path))
    try:
        got = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:
            time.sleep(0.2)
            f = src.read(timeout_s=1.0)
            if f is not None:
                got.append(f)
        s = src.stats()
        assert s.state == "online"
        assert 20 <= s.fps_in <= 30
        assert 8 <= len(got) <= 11
        assert s.frames_in - len(got) - 1 <= s.frames_dropped <= s.frames_in - len(got)
        assert np.mean(np.diff([f.seq for f in got])) >= 3  # ~5 decoded per read
        assert time.time() - got[-1].ts < 0.5
    finally:
        src.close()


def test_live_file_ends() -> None:
    path = require_shared("data/videos/bridge_traffic.mp4")
    src = open_source(_cam(path), str(path))
    try:
        t0 = time.monotonic()
        while not src.ended and time.monotonic() - t0 < 20:
            src.read(timeout_s=0.5)
        s = src.stats()
        assert src.ended and s.state == "ended"
        assert s.frames_in == 144
        assert src.read(timeout_s=0.1) is None
    finally:
        src.close()


def test_live_missing_file_retries_with_backoff() -> None:
    src = open_source(
        _cam("/nonexistent/cam.mp4", backoff_initial_s=0.1, backoff_max_s=0.4),
        "/nonexistent/cam.mp4",
    )
    try:
        time.sleep(1.5)  # attempts at 0, 0.1, 0.3, 0.7, 1.1 s (capped at 0.4)
        s = src.stats()
        assert s.state == "offline"
        assert "does not exist" in s.last_error
        assert 3 <= s.reconnects_1h <= 5
        assert src.read(timeout_s=0.1) is None and not src.ended
    finally:
        t0 = time.monotonic()
        src.close()
        assert time.monotonic() - t0 < 2


# ----------------------------------------------------------------- HTTP MJPEG
@pytest.fixture
def mjpeg_server():
    """A real HTTP server streaming multipart JPEG (like most IP cameras' /mjpg)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import cv2

    frames, _ = _replay(require_shared("data/videos/road_traffic.mp4"), 5.0, 20)
    jpegs = [cv2.imencode(".jpg", f.image)[1].tobytes() for f in frames[:20]]
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            if self.path != "/mjpg":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=fr")
            self.end_headers()
            i = 0
            try:
                while not stop.is_set():
                    jpg = jpegs[i % len(jpegs)]
                    self.wfile.write(
                        b"--fr\r\nContent-Type: image/jpeg\r\nContent-Length: "
                        + str(len(jpg)).encode()
                        + b"\r\n\r\n"
                        + jpg
                        + b"\r\n"
                    )
                    i += 1
                    time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):
                pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    stop.set()
    srv.shutdown()
    srv.server_close()


def test_http_mjpeg_source(mjpeg_server) -> None:
    url = mjpeg_server + "/mjpg"
    src = open_source(_cam(url, open_timeout_s=5), url)
    try:
        t0 = time.monotonic()
        while src.stats().state != "online" and time.monotonic() - t0 < 10:
            time.sleep(0.05)
        got = [src.read(timeout_s=1.0) for _ in range(5)]
        assert all(f is not None and f.image.shape == (360, 640, 3) for f in got)
        assert src.stats().resolution_wh == (640, 360)
    finally:
        src.close()


def test_http_missing_path_is_offline_with_message(mjpeg_server) -> None:
    url = mjpeg_server + "/nothing"
    src = open_source(_cam(url, open_timeout_s=2), url)
    try:
        t0 = time.monotonic()
        while src.stats().state != "offline" and time.monotonic() - t0 < 10:
            time.sleep(0.05)
        assert src.stats().state == "offline"
        assert "cannot open" in src.stats().last_error
    finally:
        src.close()


def test_live_looping_file_restarts_without_gap() -> None:
    """Regression: a looping live file waited a reconnect back-off (1 s) at every
    end of file and counted it as a reconnect."""
    path = require_shared("data/videos/bridge_traffic.mp4")  # 144 frames
    src = open_source(_cam(path, loop=True, backoff_initial_s=5.0), str(path))
    try:
        t0 = time.monotonic()
        while src.stats().frames_in < 400 and time.monotonic() - t0 < 30:
            time.sleep(0.1)
        s = src.stats()
        assert s.frames_in >= 400  # went round at least twice
        assert s.reconnects_1h == 0
        assert s.state == "online" and not src.ended
    finally:
        src.close()


def test_live_converts_only_what_the_worker_can_use() -> None:
    """Decode cost (issue #8): at 25 fps in and detect_fps 2, frames are grabbed
    but only ~4/s are converted to BGR; every grabbed frame is still counted."""
    from monitor.sources import LiveSource

    path = require_shared("data/videos/road_traffic.mp4")
    cam = _cam(path, realtime=True, loop=True)
    src = LiveSource("cam", str(path), cam.source, decode_fps=4.0)
    try:
        got = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:
            f = src.read(timeout_s=0.5)  # a greedy reader sees every converted frame
            if f is not None:
                got.append(f)
        s = src.stats()
        assert s.frames_in >= 40  # ~50 grabbed in 2 s
        assert 5 <= len(got) <= 11  # ~8 converted (4/s), not 50
        assert np.min(np.diff([f.seq for f in got])) >= 3  # seq gaps = skipped frames
        assert s.frames_dropped >= s.frames_in - len(got) - 1
    finally:
        src.close()


def test_live_realtime_file_paced_by_its_timestamps() -> None:
    """Regression: concourse_people.avi announces 50 fps in its header but its frame
    timestamps advance 40 ms (25 fps); pacing by the header played it twice as fast,
    halving every dwell time in a demo."""
    path = require_shared("data/videos/concourse_people.avi")
    src = open_source(_cam(path, realtime=True, loop=True), str(path))
    try:
        time.sleep(2.5)
        assert 20 <= src.stats().fps_in <= 30
    finally:
        src.close()


def test_replay_period_can_change_between_frames() -> None:
    """Adaptive sampling in replay: the next frame is one new period after the last."""
    src = ReplaySource(
        "c1", str(require_shared("data/videos/road_traffic.mp4")), sample_fps=5.0
    )
    monos = [src.read().mono for _ in range(3)]  # 0.2 s apart
    src.set_period(0.5)  # idle scene: 2/s
    monos += [src.read().mono for _ in range(2)]
    src.set_period(0.1)  # activity near a line: 10/s
    monos += [src.read().mono for _ in range(2)]
    assert np.allclose(np.diff(monos), [0.2, 0.2, 0.5, 0.5, 0.1, 0.1], atol=0.021)
    with pytest.raises(ValueError, match="period must be > 0"):
        src.set_period(0.0)
