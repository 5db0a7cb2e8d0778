"""Evidence clips play in a real headless Chromium with the expected duration.

The clip is made by :class:`monitor.evidence.EvidenceRecorder` from a real video fed
at an irregular rate (like a worker sampling at ``detect_fps``), served over a local
HTTP server with Range support, and loaded by a ``<video>`` element; the page writes
``readyState``, ``duration``, size and playback progress into the DOM, read back with
``chromium --headless --dump-dom``.
"""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from config.schema import EvidenceConfig
from monitor.events import CameraHealthPayload, Event, EventKind, EventState
from monitor.evidence import EvidenceRecorder
from monitor.types import Frame
from tests.conftest import require_shared

pytestmark = [pytest.mark.integration, pytest.mark.shared]

PAGE = """<!doctype html><html><head><title>clip</title></head><body>
<video id="v" src="%s" preload="auto" muted playsinline></video>
<pre id="out">pending</pre>
<script>
const v = document.getElementById('v');
let done = false, maxReady = 0;
function report(tag) {
  if (done) return;
  done = true;
  document.getElementById('out').textContent = JSON.stringify({
    tag, maxReady, readyState: v.readyState, duration: v.duration,
    width: v.videoWidth, height: v.videoHeight, currentTime: v.currentTime,
    error: v.error ? v.error.code + ' ' + v.error.message : null});
}
for (const e of ['loadeddata', 'canplay', 'canplaythrough', 'timeupdate'])
  v.addEventListener(e, () => { maxReady = Math.max(maxReady, v.readyState); });
v.addEventListener('canplaythrough', () => { v.play().catch(() => {}); });
v.addEventListener('timeupdate', () => { if (v.currentTime > 0.5) report('played'); });
v.addEventListener('error', () => report('error'));
setTimeout(() => report('timeout'), 8000);
</script></body></html>"""


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with single-range ``Range: bytes=a-b`` support (as browsers use)."""

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if not m or not path.is_file():
            return super().do_GET()
        data = path.read_bytes()
        size = len(data)
        start = int(m[1]) if m[1] else max(0, size - int(m[2] or 0))
        end = min(size - 1, int(m[2])) if m[1] and m[2] else size - 1
        if start >= size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self.wfile.write(data[start : end + 1])


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_RangeHandler, directory=str(root))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield root, f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def _make_clip(
    video: Path, media: Path, cfg: EvidenceConfig, sample_fps: float
) -> Event:
    """Feed a real video at an irregular ~sample_fps into a recorder; return the clip event."""
    cap = cv2.VideoCapture(str(video))
    src_fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    rec = EvidenceRecorder("gate-1", cfg, media)
    rng = np.random.default_rng(7)
    t0, m0 = 1_780_000_000.0, 5_000.0
    next_t, i, event = 0.0, 0, None
    try:
        while True:
            ok, img = cap.read()
            if not ok:
                break
            t = i / src_fps
            i += 1
            if t + 1e-9 < next_t:
                continue
            # Jittered sampling, and a dropped-frame gap now and then.
            next_t = (
                t + rng.uniform(0.6, 1.4) / sample_fps + (0.4 if i % 50 == 0 else 0)
            )
            frame = Frame("gate-1", i, t0 + t, m0 + t, img)
            rec.push(frame)
            if event is None and t >= cfg.pre_s + 0.5:
                ts = dt.datetime.fromtimestamp(frame.ts, dt.UTC)
                event = Event.new(
                    camera_id="gate-1",
                    kind=EventKind.CAMERA_HEALTH,
                    state=EventState.INSTANT,
                    ts=ts,
                    started_at=ts,
                    payload=CameraHealthPayload(status="tamper"),
                )
                rec.request_clip(event)
        assert event is not None, "video too short for the clip window"
        deadline = time.monotonic() + 60
        done: list[Event] = []
        while not done and time.monotonic() < deadline:
            done = rec.poll()
            time.sleep(0.05)
    finally:
        cap.release()
        rec.close()
    assert len(done) == 1, f"clip not finished: {rec.stats()}"
    assert done[0].event_id == event.event_id and done[0].revision == event.revision
    return done[0]


def _browser_report(chromium: str, url: str, profile: Path) -> dict[str, object]:
    cmd = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--mute-audio",
        f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--dump-dom", url,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    m = re.search(r'<pre id="out">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"no report in the page (rc {proc.returncode}): {proc.stderr[-800:]}"
    assert m[1] != "pending", "page never reported"
    return json.loads(m[1].replace("&quot;", '"'))


@pytest.mark.parametrize(
    ("video", "buffer_width", "sample_fps", "size"),
    [
        ("data/videos/road_traffic.mp4", 640, 10.0, (640, 360)),
        # Odd width and a 1080p source: the recorder must produce even dimensions.
        ("data/videos/street_pedestrians_1080p.mp4", 501, 7.0, (500, 282)),
    ],
)
def test_clip_plays_in_chromium_with_expected_duration(
    chromium_path: str,
    http_root: tuple[Path, str],
    tmp_path: Path,
    video: str,
    buffer_width: int,
    sample_fps: float,
    size: tuple[int, int],
) -> None:
    path = require_shared(video)
    assert isinstance(path, Path)
    cfg = EvidenceConfig(buffer_s=10, buffer_width=buffer_width, pre_s=3.0, post_s=2.0)
    ev = _make_clip(path, tmp_path / "media", cfg, sample_fps)
    (ref,) = ev.media
    assert ref.role == "clip" and ref.content_type == "video/mp4"
    assert ref.duration_s is not None
    # The window is pre_s + post_s; the first sampled frame may start up to one
    # sampling interval late.
    window = cfg.pre_s + cfg.post_s
    assert window - 2.0 / sample_fps <= ref.duration_s <= window + 1.0 / sample_fps

    root, base = http_root
    clip = tmp_path / "media" / ref.path
    (root / "clip.mp4").write_bytes(clip.read_bytes())
    (root / "index.html").write_text(PAGE % "clip.mp4", "utf-8")
    rep = _browser_report(chromium_path, f"{base}/index.html", tmp_path / "profile")
    assert rep["error"] is None, rep
    assert max(int(rep["readyState"]), int(rep["maxReady"])) >= 3, rep  # type: ignore[arg-type]
    assert abs(float(rep["duration"]) - ref.duration_s) < 0.05, rep  # type: ignore[arg-type]
    assert (rep["width"], rep["height"]) == size, rep
    assert rep["tag"] == "played" and float(rep["currentTime"]) > 0.5, rep  # type: ignore[arg-type]
