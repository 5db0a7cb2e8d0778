"""Live sources against a real RTSP server on loopback (monitor.rtsp_server).

The server relays H.264 RTP produced by the imageio-ffmpeg binary from a shared video;
OpenCV's FFmpeg client reads it exactly as it reads a camera.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import threading
import time
from urllib.parse import quote

import numpy as np
import pytest

from config.schema import CameraConfig
from monitor.events import CameraHeartbeat, CameraState
from monitor.rtsp_server import RtspServer, RtspServerError
from monitor.secrets import build_source_url
from monitor.sources import open_source
from tests.conftest import IN_CI, SHARED, require_shared

pytestmark = pytest.mark.integration

VIDEO = "data/videos/road_traffic.mp4"
USER = "john.doe@campus.edu"
PASSWORD = "s3cr%t:P@ss/w0rd"
FAST = {
    "stall_s": 2.0,
    "read_timeout_s": 1.0,
    "open_timeout_s": 3.0,
    "backoff_initial_s": 0.2,
    "backoff_max_s": 1.0,
}


def _server(**kw) -> RtspServer:
    srv = RtspServer(**kw)
    return srv


def _start(srv: RtspServer) -> RtspServer:
    try:
        return srv.start()
    except (RtspServerError, OSError) as exc:
        srv.close()
        if IN_CI:
            pytest.fail(f"RTSP test server cannot start: {exc}")
        pytest.skip(f"RTSP test server cannot start: {exc}")


@pytest.fixture(scope="module")
def server():
    video = require_shared(VIDEO)
    srv = _server()
    srv.add_stream("cam", video)
    _start(srv)
    yield srv
    srv.close()


def _camera(url: str, **source) -> CameraConfig:
    # detect_fps 15: live sources convert up to 2 x 15 = 30 frames/s to BGR, so these
    # tests see every frame of the 25 fps stream (decimation has its own unit test).
    return CameraConfig(id="gate", detect_fps=15, source={"url": url, **FAST, **source})


def _wait_state(src, state: str, timeout_s: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if src.stats().state == state:
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(f"state {src.stats().state!r} != {state!r}: {src.stats()}")


def _frames(src, seconds: float) -> list:
    out, t0 = [], time.monotonic()
    while time.monotonic() - t0 < seconds:
        f = src.read(timeout_s=0.2)
        if f is not None:
            out.append(f)
    return out


def _wait_frames(src, n: int, timeout_s: float) -> int:
    """Read until ``n`` frames arrived (a reconnect may still be under way)."""
    got, t0 = 0, time.monotonic()
    while got < n and time.monotonic() - t0 < timeout_s:
        if src.read(timeout_s=0.2) is not None:
            got += 1
    return got


def test_reads_live_frames_newest_only(server) -> None:
    src = open_source(_camera(server.url("cam")), server.url("cam"))
    try:
        _wait_state(src, "online", 10)
        # A slow consumer (5/s) against a 25/s stream: no lag builds up, the rest
        # is counted as dropped.
        got = []
        for _ in range(10):
            time.sleep(0.2)
            f = src.read(timeout_s=1.0)
            assert f is not None
            got.append(f)
        s = src.stats()
        assert s.resolution_wh == (640, 360)
        assert all(f.image.shape == (360, 640, 3) for f in got)
        assert s.frames_dropped >= s.frames_in - len(got) - 1 > 0
        assert 10 < s.fps_in < 45, s  # 25 fps stream (bursty on a loaded machine)
        assert time.time() - got[-1].ts < 2.0  # fresh, not queued
        assert np.all(np.diff([f.mono for f in got]) > 0)
        assert np.mean(np.diff([f.seq for f in got])) > 2  # gaps = dropped frames
    finally:
        src.close()


def test_server_killed_goes_offline_then_recovers(server) -> None:
    """Server gone -> offline well within stall_s; back -> frames and detections
    resume in the same source object (no worker restart)."""
    from config.detector import DetectorConfig
    from monitor.detector import load_detector

    models = require_shared("models")
    det = load_detector(DetectorConfig(model="yolox_nano", models_dir=str(models)))
    src = open_source(_camera(server.url("cam")), server.url("cam"))
    try:
        _wait_state(src, "online", 10)
        before = _frames(src, 1.0)
        assert len(before) > 10
        assert len(det.detect(before[-1].image)) > 0
        server.stop()
        took = _wait_state(src, "offline", FAST["stall_s"] + 1.0)
        assert took <= FAST["stall_s"]
        assert src.stats().last_error
        time.sleep(1.5)  # a few reconnect attempts against a closed port
        s = src.stats()
        assert s.state == "offline" and s.reconnects_1h >= 2
        assert "refused" in s.last_error
        server.start()
        _wait_state(src, "online", 10)
        after = _frames(src, 1.0)
        assert len(after) > 10
        assert after[0].seq > before[-1].seq
        assert len(det.detect(after[-1].image)) > 0  # detections resume
        assert src.stats().last_error == ""
    finally:
        src.close()
        server.start()


def test_stalled_stream_detected_by_watchdog(server) -> None:
    """Connection open, no packets: offline after stall_s, back when data flows."""
    cam = _camera(server.url("cam"), read_timeout_s=10.0, stall_s=1.5)
    src = open_source(cam, server.url("cam"))
    try:
        _wait_state(src, "online", 10)
        server.pause("cam")
        _wait_state(src, "offline", 10.0)
        # Offline stall_s after the last frame (measured from that frame: on a
        # loaded machine the decoder may still be working off buffered packets
        # for a while after the server paused).
        silent = time.time() - src.stats().last_frame_ts
        assert 1.5 <= silent < 1.5 + 1.0, silent
        assert "stalled" in src.stats().last_error
        server.pause("cam", False)
        _wait_state(src, "online", 20)
        assert _wait_frames(src, 5, 15) == 5
    finally:
        server.pause("cam", False)
        src.close()


def test_resolution_change_mid_stream(server) -> None:
    """The encoder restarts at 320 px wide while the client stays connected:
    frames keep flowing (OpenCV scales them to the size it opened with)."""
    src = open_source(_camera(server.url("cam")), server.url("cam"))
    try:
        _wait_state(src, "online", 10)
        server.restart_stream("cam", width=320)
        frames = _frames(src, 2.0)
        assert len(frames) > 10
        assert {f.image.shape for f in frames} <= {(360, 640, 3), (180, 320, 3)}
        assert src.stats().state == "online"
    finally:
        src.close()
        server.restart_stream("cam", width=None)


@pytest.mark.parametrize(
    ("mode", "expect"),
    [
        ("garbage", "does not speak RTSP"),
        ("silent", "did not answer"),
        ("refused", "refused"),
        ("missing", "not found"),
    ],
)
def test_bad_endpoints_give_clear_offline_state(server, mode, expect) -> None:
    srv = None
    if mode in {"garbage", "silent"}:
        srv = _start(_server(mode=mode))
        url = srv.url("cam")
    elif mode == "refused":
        srv = RtspServer()  # a free port nobody listens on
        url = srv.url("cam")
    else:
        url = server.url("nosuchstream")
    src = open_source(_camera(url, open_timeout_s=2.0), url)
    t0 = time.monotonic()
    try:
        _wait_state(src, "offline", 10)
        assert time.monotonic() - t0 < 8
        assert expect in src.stats().last_error
    finally:
        t1 = time.monotonic()
        src.close()
        assert time.monotonic() - t1 < 5  # never hangs on close
        if srv is not None:
            srv.close()


@pytest.mark.parametrize(
    ("url", "expect"),
    [
        # Unroutable: times out, or (behind a transparent proxy, as on some CI
        # runners) is answered by something that is not RTSP. Either way: bounded
        # and said in words.
        ("rtsp://10.255.255.1:554/stream", ("unreachable", "does not speak RTSP")),
        ("rtsp://camera.invalid:554/stream", ("cannot be resolved",)),
    ],
)
def test_unreachable_host_is_bounded(url, expect) -> None:
    src = open_source(_camera(url, open_timeout_s=1.5), url)
    try:
        _wait_state(src, "offline", 12)
        err = src.stats().last_error
        assert any(e in err for e in expect), err
    finally:
        t0 = time.monotonic()
        src.close()
        assert time.monotonic() - t0 < 5


def _secret_forms() -> list[str]:
    return [
        PASSWORD,
        quote(PASSWORD, safe=""),
        quote(quote(PASSWORD, safe=""), safe=""),
    ]


@pytest.fixture
def auth_server():
    video = require_shared(VIDEO)
    srv = _server(credentials=(USER, PASSWORD))
    srv.add_stream("cam", video)
    _start(srv)
    yield srv
    srv.close()


@pytest.fixture
def captured_logs():
    """Everything logged through setup_logging's redaction, as one string."""
    from monitor.logs import setup_logging

    setup_logging("DEBUG")
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)  # added after setup: still redacted
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logging.getLogger().addHandler(handler)
    yield buf
    logging.getLogger().removeHandler(handler)
    setup_logging("INFO")


@pytest.mark.parametrize("right", [True, False], ids=["right-password", "wrong"])
def test_credentials_never_leak(auth_server, captured_logs, monkeypatch, right):
    """Password with %, :, @, / and a dotted username holding @: it reaches the
    server (frames flow) or is refused (clear state), and never shows up in logs,
    stats, heartbeats or exceptions."""
    monkeypatch.setenv("CAM_USER", USER)
    monkeypatch.setenv("CAM_PASS", PASSWORD if right else PASSWORD + "x")
    cam = CameraConfig(
        id="gate",
        source={
            "url": auth_server.url("cam"),
            "credentials": {"username_env": "CAM_USER", "password_env": "CAM_PASS"},
            **FAST,
        },
    )
    url = build_source_url(cam.source, None)
    assert quote(PASSWORD, safe="") in url or not right
    logging.getLogger("test").warning("opening %s", url)
    src = open_source(cam, url)
    try:
        if right:
            _wait_state(src, "online", 10)
            assert _wait_frames(src, 5, 15) == 5
        else:
            _wait_state(src, "offline", 10)
            assert "authentication failed" in src.stats().last_error
        try:
            raise ConnectionError(f"simulated failure talking to {url}")
        except ConnectionError:
            logging.getLogger("test").exception("worker error")
        s = src.stats()
        hb = CameraHeartbeat(
            camera_id="gate",
            state=CameraState.ONLINE if right else CameraState.OFFLINE,
            ts=dt.datetime.now(dt.UTC),
            message=s.last_error,
            pid=os.getpid(),
        ).model_dump_json()
    finally:
        src.close()
    text = captured_logs.getvalue()
    assert "opening rtsp://***@127.0.0.1" in text
    assert "simulated failure talking to rtsp://***@" in text
    blobs = {"logs": text, "stats": repr(s), "heartbeat": hb}
    for form in _secret_forms() + [PASSWORD + "x"]:
        for where, blob in blobs.items():
            assert form not in blob, f"password form {form!r} leaked into {where}"


def test_server_binary_available() -> None:
    """Documents where the encoder comes from (the imageio-ffmpeg wheel)."""
    from monitor.rtsp_server import ffmpeg_exe

    assert os.access(ffmpeg_exe(), os.X_OK)
    assert SHARED  # shared data location is configured


def test_worker_reports_offline_then_resumes_detecting(
    server, redis_url, unique, tmp_path
) -> None:
    """End to end through the real worker loop (monitor.worker.run_camera) and the
    real Redis publisher: server killed -> an offline camera_health event within
    stall_s; server back -> an online event and detector calls resume, in the same
    worker (no process restart)."""
    import redis as redis_lib

    from config.detector import DetectorConfig
    from config.tracker import TrackerConfig
    from monitor.detector import load_detector
    from monitor.events import decode_event
    from monitor.publisher import EventPublisher
    from monitor.tracker import Tracker
    from monitor.worker import WorkerParts, run_camera

    models = require_shared("models")
    det = load_detector(DetectorConfig(model="yolox_nano", models_dir=str(models)))
    cam = CameraConfig(
        id="gate",
        source={"url": server.url("cam"), **FAST},
        detect_fps=5,
        gating={"mode": "full"},
    )
    stream, hb_stream = f"test:ev:{unique}", f"test:hb:{unique}"
    pub = EventPublisher(
        redis_url,
        stream=stream,
        heartbeat_stream=hb_stream,
        maxlen=10_000,
        spool_dir=tmp_path / "spool",
        spool_max_events=100,
    )
    src = open_source(cam, server.url("cam"))
    parts = WorkerParts(
        source=src, detector=det, tracker=Tracker(TrackerConfig()), pipelines=[],
        sink=pub,
    )  # fmt: skip
    stop = threading.Event()
    result = {}
    th = threading.Thread(
        target=lambda: result.update(
            stats=run_camera(cam, parts, stop, heartbeat_s=0.5)
        ),
        daemon=True,
    )
    r = redis_lib.Redis.from_url(redis_url)

    def health_events() -> list:
        evs = [decode_event(f) for _, f in r.xrange(stream)]
        return [
            (e.payload.status, e.ts.timestamp())
            for e in evs
            if e.kind == "camera_health"
        ]

    def wait_for(pred, timeout_s):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if pred():
                return True
            time.sleep(0.1)
        return False

    try:
        th.start()
        assert wait_for(lambda: src.stats().state == "online", 15)
        time.sleep(1.5)
        killed_at = time.time()
        server.stop()
        assert wait_for(lambda: any(s == "offline" for s, _ in health_events()), 10)
        off_ts = next(t for s, t in health_events() if s == "offline")
        assert off_ts - killed_at <= FAST["stall_s"] + 0.5
        server.start()
        assert wait_for(
            lambda: [s for s, _ in health_events()][-1:] == ["online"], 20
        ), health_events()
        calls_before = _detector_calls(r, hb_stream)
        time.sleep(2.0)
        assert _detector_calls(r, hb_stream) > calls_before  # detections resume
        assert th.is_alive()  # the same worker carried on
    finally:
        stop.set()
        th.join(15)
        src.close()
        pub.close()
        server.start()
        r.delete(stream, hb_stream)
    assert result["stats"].frames > 5


def _detector_calls(r, hb_stream: str) -> int:
    import json

    last = r.xrevrange(hb_stream, count=1)
    if not last:
        return 0
    fields = {k.decode(): v for k, v in last[0][1].items()}
    return int(json.loads(fields["data"])["detector_calls"])


def test_preencoded_stream_loops_without_gap() -> None:
    """A stream-copied (pre-encoded) stream keeps playing across the file's loop point.

    bridge_traffic.mp4 lasts 4.8 s; 7 s of reading crosses the loop, where copied
    timestamps restart and a client that mishandled them would stall or go offline.
    """
    video = require_shared("data/videos/bridge_traffic.mp4")
    srv = _server()
    srv.add_stream("bridge", video, preencode=True)
    _start(srv)
    try:
        src = open_source(_camera(srv.url("bridge")), srv.url("bridge"))
        try:
            _wait_state(src, "online", 10)
            first = _frames(src, 3.5)
            second = _frames(src, 3.5)  # spans the loop point (4.8 s)
            assert len(first) > 20 and len(second) > 20, (len(first), len(second))
            assert all(f.image.shape == (720, 1280, 3) for f in first + second)
            assert src.stats().state == "online"
            assert np.all(np.diff([f.mono for f in first + second]) > 0)
        finally:
            src.close()
    finally:
        srv.close()
