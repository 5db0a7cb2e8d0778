"""Frame sources through OpenCV: RTSP, HTTP/MJPEG, video files and local devices.

Two kinds of source share the :class:`FrameSource` protocol:

* :class:`LiveSource` (cameras, and files played "live"): a reader thread decodes
  continuously and keeps only the newest frame, so a slow consumer never builds up lag;
  frames decoded but never read are counted as dropped. The thread reconnects with
  capped exponential back-off, and a stall watchdog declares the camera offline when no
  frame arrived for ``stall_s`` and abandons a reader stuck inside FFmpeg.
* :class:`ReplaySource` (files, ``replay=True``): deterministic, no thread, no dropping;
  frames are sampled at ``sample_fps`` by video timestamp and carry clocks derived from
  the video position, so durations are true video seconds at any processing speed.

Errors never escape a live source: they become ``state`` and ``last_error`` (already
redacted: the URL may hold credentials).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

# FFmpeg and OpenCV write their own messages straight to stderr, outside Python
# logging and therefore outside redaction, and they say less than our diagnosis does.
# Quiet by default (set before cv2 loads; operators may override for debugging).
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from config.schema import CameraConfig, SourceConfig
from monitor.secrets import redact, split_credentials
from monitor.types import Frame

__all__ = [
    "FrameSource",
    "LiveSource",
    "ReplaySource",
    "SourceError",
    "SourceStats",
    "diagnose_rtsp",
    "open_source",
]

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """A source cannot be opened at all (replay of a missing/unreadable file)."""


@dataclass
class SourceStats:
    """Snapshot of a source's health, safe to publish (``last_error`` is redacted).

    Attributes:
        state: ``connecting`` | ``online`` | ``offline`` | ``ended``.
        frames_in: Frames decoded since the source was created.
        frames_dropped: Frames decoded but never returned by ``read`` (live only).
        reconnects_1h: Reconnect attempts in the last hour.
        fps_in: Decode rate over the last few seconds, frames/s.
        last_frame_ts: Wall-clock time of the newest frame, epoch seconds.
        last_error: Last problem in words, credentials removed ("" when none).
        resolution_wh: ``(width, height)`` of the newest frame.
    """

    state: str
    frames_in: int = 0
    frames_dropped: int = 0
    reconnects_1h: int = 0
    fps_in: float = 0.0
    last_frame_ts: float | None = None
    last_error: str = ""
    resolution_wh: tuple[int, int] | None = None


class FrameSource(Protocol):
    """What a worker reads frames from."""

    camera_id: str

    def read(self, timeout_s: float) -> Frame | None:
        """The newest frame not yet returned, or None if none came within timeout."""
        ...

    def stats(self) -> SourceStats:
        """Current counters and state."""
        ...

    @property
    def ended(self) -> bool:
        """A non-looping file reached its end."""
        ...

    def close(self) -> None:
        """Stop threads and release the capture."""
        ...


# ---------------------------------------------------------------- opening
def _kind(url: str) -> str:
    if url.startswith("device:"):
        return "device"
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in {"rtsp", "rtsps"}:
        return "rtsp"
    if scheme in {"http", "https"}:
        return "http"
    return "file"


def _file_path(url: str) -> str:
    return urlsplit(url).path if url.startswith("file://") else url


def _ffmpeg_options(src: SourceConfig, kind: str) -> str:
    """FFmpeg demuxer options (OpenCV reads them from the environment at open)."""
    us = int(min(src.open_timeout_s, src.read_timeout_s) * 1e6)
    opts: list[str] = []
    if kind == "rtsp":
        # ``timeout`` is the RTSP socket I/O timeout in microseconds (FFmpeg >= 5).
        opts += [f"rtsp_transport;{src.transport}", f"timeout;{us}"]
    elif kind == "http":
        opts += [f"rw_timeout;{us}", "reconnect;0"]
    return "|".join(opts)


# OPENCV_FFMPEG_CAPTURE_OPTIONS is process-global: serialise opens that set it.
_open_lock = threading.Lock()


def _open_capture(url: str, src: SourceConfig) -> cv2.VideoCapture:
    kind = _kind(url)
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(src.open_timeout_s * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        # A read blocked longer than stall_s is a stall: let FFmpeg give up then,
        # so the reader reconnects (the watchdog has already said "offline").
        int(min(src.read_timeout_s, src.stall_s) * 1000),
    ]
    if kind == "device":
        try:
            index = int(url.split(":", 1)[1])
        except ValueError as exc:
            raise SourceError(f"bad device source {url!r}: expected device:N") from exc
        return cv2.VideoCapture(index, cv2.CAP_V4L2)
    if kind == "file":
        return cv2.VideoCapture(_file_path(url), cv2.CAP_FFMPEG, params)
    with _open_lock:
        old = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = _ffmpeg_options(src, kind)
        try:
            return cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
        finally:
            if old is None:
                os.environ.pop("OPENCV_FFMPEG_CAPTURE_OPTIONS", None)
            else:
                os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = old


def diagnose_rtsp(url: str, timeout_s: float = 3.0) -> str:
    """Why an RTSP URL cannot be opened, in words (OpenCV only says "failed").

    Connects and sends ``DESCRIBE`` itself (with Basic/Digest auth when the URL holds
    credentials) and classifies the outcome: unreachable host, refused port, a peer
    that does not speak RTSP, wrong credentials, unknown stream.

    Args:
        url: ``rtsp://[user:pass@]host[:port]/path``.
        timeout_s: Connect and read timeout, seconds.

    Returns:
        A redacted, human-readable diagnosis.
    """
    import base64
    import hashlib

    clean, user, pw = split_credentials(url)
    parts = urlsplit(clean)
    host, port = parts.hostname or "", parts.port or 554
    where = f"{host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except TimeoutError:
        return f"host {where} unreachable (connect timed out after {timeout_s:g} s)"
    except ConnectionRefusedError:
        return f"connection to {where} refused (no RTSP server listening)"
    except socket.gaierror as exc:
        return f"host name {host!r} cannot be resolved ({exc.strerror})"
    except OSError as exc:
        return f"host {where} unreachable ({exc.strerror or exc})"

    def describe(auth: str | None, cseq: int) -> tuple[int, dict[str, str]]:
        req = (
            f"DESCRIBE {clean} RTSP/1.0\r\nCSeq: {cseq}\r\nAccept: application/sdp\r\n"
        )
        if auth:
            req += f"Authorization: {auth}\r\n"
        sock.sendall((req + "\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1", "replace")
        lines = head.split("\r\n")
        status = lines[0].split(" ")
        if not data:
            raise EOFError
        if len(status) < 2 or not status[0].startswith("RTSP/"):
            first = lines[0][:40]
            raise ValueError(
                f"answered {first!r}" if first.isprintable() else "binary garbage"
            )
        hdrs = {}
        for ln in lines[1:]:
            if ":" in ln:
                k, v = ln.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
        return int(status[1]), hdrs

    try:
        with sock:
            code, hdrs = describe(None, 1)
            if code == 401 and user is not None:
                challenge = hdrs.get("www-authenticate", "")
                if challenge.lower().startswith("digest"):
                    import re

                    f = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
                    ha1 = hashlib.md5(
                        f"{user}:{f.get('realm', '')}:{pw or ''}".encode()
                    ).hexdigest()
                    ha2 = hashlib.md5(f"DESCRIBE:{clean}".encode()).hexdigest()
                    resp = hashlib.md5(
                        f"{ha1}:{f.get('nonce', '')}:{ha2}".encode()
                    ).hexdigest()
                    auth = (
                        f'Digest username="{user}", realm="{f.get("realm", "")}", '
                        f'nonce="{f.get("nonce", "")}", uri="{clean}", '
                        f'response="{resp}"'
                    )
                else:
                    token = base64.b64encode(f"{user}:{pw or ''}".encode()).decode()
                    auth = f"Basic {token}"
                code, hdrs = describe(auth, 2)
    except TimeoutError:
        return f"RTSP server {where} accepted the connection but did not answer"
    except EOFError:
        return f"peer at {where} closed the connection without an RTSP answer"
    except (ValueError, IndexError, UnicodeError) as exc:
        return f"peer at {where} does not speak RTSP ({exc})"
    except OSError as exc:
        return f"connection to {where} failed ({exc.strerror or exc})"
    if code == 401:
        return (
            f"authentication failed at {where} (wrong username/password)"
            if user is not None
            else f"authentication required at {where} but no credentials configured"
        )
    if code == 404:
        return f"stream {parts.path or '/'} not found on {where}"
    if code >= 400:
        return f"RTSP server {where} answered DESCRIBE with {code}"
    return f"RTSP server {where} answers, but the stream could not be decoded"


def _open_error(url: str, src: SourceConfig) -> str:
    kind = _kind(url)
    if kind == "file":
        path = Path(_file_path(url))
        if not path.exists():
            return f"video file {path} does not exist"
        if path.stat().st_size == 0:
            return f"video file {path} is empty"
        return f"video file {path} cannot be decoded (truncated or corrupt?)"
    if kind == "rtsp":
        return redact(diagnose_rtsp(url, min(3.0, src.open_timeout_s)))
    if kind == "device":
        return f"local camera {url} cannot be opened (missing or busy?)"
    return redact(f"cannot open {url} (unreachable, refused or not a video stream)")


# ---------------------------------------------------------------- replay
class ReplaySource:
    """Deterministic file playback sampled by video timestamp (see module doc).

    Args:
        camera_id: Camera the frames belong to.
        path: Video file.
        sample_fps: Frames per video second to return (None: every frame).
        loop: Start again at the end (timestamps keep increasing).
    """

    def __init__(
        self,
        camera_id: str,
        path: str,
        *,
        sample_fps: float | None = None,
        loop: bool = False,
        src: SourceConfig | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.path = _file_path(path)
        self._src = src or SourceConfig(url=self.path)
        if not Path(self.path).exists():
            raise SourceError(f"video file {self.path} does not exist")
        self._cap = _open_capture(self.path, self._src)
        if not self._cap.isOpened():
            raise SourceError(_open_error(self.path, self._src))
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.native_fps = fps if 0 < fps < 1000 else 25.0
        self.header_frames = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.sample_fps = sample_fps
        self.loop = loop
        self._period = 1.0 / sample_fps if sample_fps else 0.0
        self._next_t: float | None = None  # sampling grid starts at the first frame
        self._sampled_t: float | None = None  # video time of the last returned frame
        self._index = -1  # decoded frame index of the last grab
        self._offset = 0.0  # video seconds added per completed loop
        self._loop_start = 0  # decoded index of the current loop's first frame
        self._last_t = -1.0
        self._base_ts = time.time()
        self._base_mono = time.monotonic()
        self._stats = SourceStats(state="online")
        self._ended = False

    @property
    def ended(self) -> bool:
        return self._ended

    def _video_time(self) -> float:
        """Seconds of the grabbed frame; falls back to index/fps when POS_MSEC lies."""
        t = float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
        k = self._index - self._loop_start
        if not math.isfinite(t) or t < 0 or (t == 0 and k > 0):
            t = k / self.native_fps
        return t + self._offset

    def read(self, timeout_s: float = 0.0) -> Frame | None:
        """Next sampled frame, or None at the end (then ``ended`` is True)."""
        while not self._ended:
            if not self._cap.grab():
                if self._finish():
                    continue
                return None
            self._index += 1
            t = self._video_time()
            if t <= self._last_t:  # broken timestamps: keep time moving forward
                t = self._last_t + 1.0 / self.native_fps
            self._last_t = t
            if self._next_t is None:
                self._next_t = t
            if self._period and t + 1e-6 < self._next_t:
                continue  # skipped frame: grabbed, never decoded to BGR
            ok, image = self._cap.retrieve()
            if not ok or image is None:
                self._stats.last_error = f"frame {self._index} could not be decoded"
                continue
            self._sampled_t = t
            if self._period:
                # Catch up without bursts if the video has gaps.
                self._next_t = max(self._next_t + self._period, t)
            if image.ndim == 2:
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
            s = self._stats
            s.frames_in += 1
            s.last_frame_ts = self._base_ts + t
            s.resolution_wh = (int(image.shape[1]), int(image.shape[0]))
            s.fps_in = self.sample_fps or self.native_fps
            return Frame(
                self.camera_id,
                self._index,
                self._base_ts + t,
                self._base_mono + t,
                np.ascontiguousarray(image),
            )
        return None

    def set_period(self, period_s: float) -> None:
        """Sample the next frame ``period_s`` video seconds after the last one.

        Replay's counterpart of the live loop's adaptive pacing (``idle_fps`` /
        ``active_fps``): the worker calls it after each frame with the period its
        gate chose, so an offline replay samples what the live camera would.

        Args:
            period_s: Seconds of video between sampled frames (> 0).
        """
        if not period_s > 0:
            raise ValueError(f"sampling period must be > 0 s, got {period_s!r}")
        self._period = float(period_s)
        if self._sampled_t is not None:
            self._next_t = self._sampled_t + self._period

    def _finish(self) -> bool:
        """End of stream: loop (True) or end with a message (False)."""
        decoded = self._index + 1
        if self.loop and decoded > self._loop_start:
            # Reopening is more reliable than seeking back (AVI index, bad headers).
            self._cap.release()
            self._cap = _open_capture(self.path, self._src)
            self._offset = self._last_t + 1.0 / self.native_fps
            self._loop_start = self._index + 1
            return self._cap.isOpened()
        self._ended = True
        self._stats.state = "ended"
        if decoded == 0:
            self._stats.last_error = f"video file {self.path} holds no decodable frame"
        elif self.header_frames and decoded < self.header_frames:
            self._stats.last_error = (
                f"video ended after {decoded} decodable frames although its header "
                f"announces {self.header_frames} (truncated file or wrong header)"
            )
        else:
            self._stats.last_error = "end of file"
        log.info("camera %s: %s", self.camera_id, self._stats.last_error)
        return False

    def stats(self) -> SourceStats:
        return replace(self._stats)

    def close(self) -> None:
        self._cap.release()


# ---------------------------------------------------------------- live
class LiveSource:
    """Reader-thread source with reconnects and a stall watchdog (see module doc).

    Args:
        camera_id: Camera the frames belong to.
        url: Resolved URL (credentials injected), file path or ``device:N``.
        src: The camera's source config (timeouts, back-off, loop, realtime).
    """

    _FPS_WINDOW_S = 5.0

    def __init__(
        self,
        camera_id: str,
        url: str,
        src: SourceConfig,
        decode_fps: float | None = None,
    ) -> None:
        self.camera_id = camera_id
        # Frames closer together than this are decoded (grab) but not converted to
        # BGR (retrieve): the worker samples far below the camera rate, and the
        # colour conversion is ~40 % of a 1080p frame's cost.
        self._decode_period = 1.0 / decode_fps if decode_fps else 0.0
        self._url = url
        self._src = src
        self._kind = _kind(url)
        self._cond = threading.Condition()
        self._newest: Frame | None = None
        self._stop = threading.Event()
        self._state = "connecting"
        self._last_error = ""
        self._frames_in = 0
        self._dropped = 0
        self._reconnects: deque[float] = deque()
        self._arrivals: deque[float] = deque()
        self._last_frame_ts: float | None = None
        self._last_frame_mono: float | None = None
        self._resolution: tuple[int, int] | None = None
        self._ended = False
        self._generation = 0
        self._thread: threading.Thread | None = None
        self._busy_since: float | None = None  # reader inside a blocking call since
        self._restart_lock = threading.Lock()
        self._looped = False
        self._start_reader()

    # ---------------------------------------------------------------- public
    @property
    def ended(self) -> bool:
        return self._ended

    def read(self, timeout_s: float) -> Frame | None:
        """The newest frame not yet returned, waiting up to ``timeout_s``."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while self._newest is None and not self._ended and not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.25))
            frame, self._newest = self._newest, None
        self._watchdog()
        return frame

    def stats(self) -> SourceStats:
        self._watchdog()
        now = time.monotonic()
        with self._cond:
            while self._reconnects and self._reconnects[0] < now - 3600:
                self._reconnects.popleft()
            while self._arrivals and self._arrivals[0] < now - self._FPS_WINDOW_S:
                self._arrivals.popleft()
            n = len(self._arrivals)
            fps = 0.0
            if n >= 2:
                # Span up to now, not to the last frame: the rate decays to 0 when
                # frames stop instead of freezing at its last value.
                fps = (n - 1) / max(now - self._arrivals[0], 1e-6)
            return SourceStats(
                state=self._state,
                frames_in=self._frames_in,
                frames_dropped=self._dropped,
                reconnects_1h=len(self._reconnects),
                fps_in=round(fps, 2),
                last_frame_ts=self._last_frame_ts,
                last_error=self._last_error,
                resolution_wh=self._resolution,
            )

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        t = self._thread
        if t is not None:
            t.join(timeout=self._src.read_timeout_s + 2.0)
            if t.is_alive():
                log.warning("camera %s: reader thread did not stop", self.camera_id)

    # ---------------------------------------------------------------- internals
    def _set_state(self, state: str, error: str | None = None) -> None:
        with self._cond:
            changed = state != self._state
            self._state = state
            if error is not None:
                self._last_error = redact(error)
        if changed:
            lvl = logging.INFO if state == "online" else logging.WARNING
            log.log(
                lvl, "camera %s: %s%s", self.camera_id, state,
                f" ({self._last_error})" if state != "online" and self._last_error else "",
            )  # fmt: skip

    def _start_reader(self) -> None:
        self._generation += 1
        gen = self._generation
        self._thread = threading.Thread(
            target=self._run,
            args=(gen,),
            name=f"source-{self.camera_id}-{gen}",
            daemon=True,
        )
        self._thread.start()

    def _watchdog(self) -> None:
        """Declare a stall; replace a reader stuck inside FFmpeg beyond its timeouts."""
        if self._kind == "file" or self._stop.is_set() or self._ended:
            return
        now = time.monotonic()
        last = self._last_frame_mono
        if self._state == "online" and last is not None:
            silent = now - last
            if silent > self._src.stall_s:
                self._set_state(
                    "offline", f"stalled: no frame for {silent:.1f} s (reconnecting)"
                )
        # A reader inside OpenCV should come back within its open/read timeouts
        # (plus our own 3 s diagnosis); if it did not, FFmpeg ignored them: abandon
        # the thread (it exits when it finally returns) and start a fresh one.
        src = self._src
        limit = src.open_timeout_s + min(src.read_timeout_s, src.stall_s) + 3.0 + 2.0
        with self._restart_lock:
            busy = self._busy_since
            if busy is not None and now - busy > limit:
                self._set_state(
                    "offline", f"reader stuck for {now - busy:.0f} s inside the decoder"
                )
                log.warning(
                    "camera %s: reader hung, starting a new one", self.camera_id
                )
                self._busy_since = now
                self._start_reader()

    def _sleep(self, seconds: float, gen: int) -> bool:
        """Interruptible sleep; False when the reader should exit."""
        if gen == self._generation:
            self._busy_since = None  # sleeping on purpose, not hung
        self._stop.wait(seconds)
        return not self._stop.is_set() and gen == self._generation

    def _run(self, gen: int) -> None:
        src = self._src
        backoff = src.backoff_initial_s
        first = True
        self._looped = False
        while not self._stop.is_set() and gen == self._generation:
            if not first and not self._looped:
                with self._cond:
                    self._reconnects.append(time.monotonic())
            first = False
            self._looped = False
            self._busy_since = time.monotonic()
            cap: cv2.VideoCapture | None = None
            try:
                cap = _open_capture(self._url, src)
                err = "" if cap.isOpened() else _open_error(self._url, src)
            except Exception as exc:  # noqa: BLE001 - reported, then retried
                err = f"cannot open source: {exc}"
            if cap is None or not cap.isOpened():
                if cap is not None:
                    cap.release()
                self._set_state("offline", err)
                if not self._sleep(backoff, gen):
                    return
                backoff = min(backoff * 2.0, src.backoff_max_s)
                continue
            try:
                got_frames = self._pump(cap, gen)
            except Exception as exc:  # noqa: BLE001 - never let the reader die
                log.exception("camera %s: reader error", self.camera_id)
                self._set_state("offline", f"reader error: {exc}")
                got_frames = False
            finally:
                cap.release()
            if self._ended or self._stop.is_set() or gen != self._generation:
                return
            if self._looped:
                continue  # a looping file: reopen at once, no back-off, no reconnect
            if got_frames:
                backoff = src.backoff_initial_s  # it worked for a while: start over
            if not self._sleep(backoff, gen):
                return
            backoff = min(backoff * 2.0, src.backoff_max_s)

    def _pump(self, cap: cv2.VideoCapture, gen: int) -> bool:
        """Read until error/stop; returns whether any frame was decoded."""
        src = self._src
        got = False
        is_file = self._kind == "file"
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0) if is_file else 0.0
        pace = 1.0 / fps if (is_file and src.realtime and 0 < fps < 1000) else 0.0
        t0 = time.monotonic()
        n = 0
        while not self._stop.is_set() and gen == self._generation:
            if not cap.grab():
                ok, image = False, None
            elif (
                self._decode_period
                and self._last_frame_mono is not None
                and time.monotonic() - self._last_frame_mono < self._decode_period
            ):
                with self._cond:
                    self._frames_in += 1
                    self._dropped += 1  # decoded, superseded before anyone read it
                    self._busy_since = time.monotonic()
                    self._arrivals.append(self._busy_since)
                    if len(self._arrivals) > 4096:
                        self._arrivals.popleft()
                got = True
                n += 1
                t0 = self._pace(pace, t0, n, cap)
                continue
            else:
                ok, image = cap.retrieve()
            if not ok or image is None:
                if is_file:
                    if src.loop and got:
                        log.debug("camera %s: looping file", self.camera_id)
                        self._looped = True
                        return True
                    self._ended = True
                    self._set_state(
                        "ended",
                        "end of file" if got else _open_error(self._url, src),
                    )
                    with self._cond:
                        self._cond.notify_all()
                    return got
                last = self._last_frame_mono
                silent = time.monotonic() - last if (got and last is not None) else 0.0
                # A read timeout (capped at stall_s) after a long silence is a stall;
                # a connection cut mid-stream fails within a frame interval.
                if silent >= 0.5 * src.stall_s:
                    why = f"stalled: no frame for {silent:.1f} s (reconnecting)"
                elif n:
                    why = f"stream interrupted after {n} frames (reconnecting)"
                else:
                    why = "stream opened but delivered no frame (reconnecting)"
                self._set_state("offline", why)
                return got
            now_mono = time.monotonic()
            now_ts = time.time()
            if image.ndim == 2:
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
            wh = (int(image.shape[1]), int(image.shape[0]))
            with self._cond:
                if self._resolution is not None and wh != self._resolution:
                    log.warning(
                        "camera %s: resolution changed %dx%d -> %dx%d",
                        self.camera_id, *self._resolution, *wh,
                    )  # fmt: skip
                self._resolution = wh
                if self._newest is not None:
                    self._dropped += 1
                self._frames_in += 1
                self._newest = Frame(
                    self.camera_id,
                    self._frames_in,
                    now_ts,
                    now_mono,
                    np.asarray(image, dtype=np.uint8),
                )
                self._last_frame_ts = now_ts
                self._last_frame_mono = now_mono
                self._busy_since = now_mono
                self._arrivals.append(now_mono)
                if len(self._arrivals) > 4096:
                    self._arrivals.popleft()
                self._cond.notify_all()
            if not got or self._state != "online":
                self._set_state("online", "")
            got = True
            n += 1
            t0 = self._pace(pace, t0, n, cap)
        return got

    def _pace(self, pace: float, t0: float, n: int, cap: cv2.VideoCapture) -> float:
        """Native speed for files: sleep until frame ``n``'s due time; returns t0.

        The due time comes from the frame's own timestamp when the container has one:
        some files announce a wrong rate in their header (concourse_people.avi says
        50 fps, its timestamps 25), and pacing by the header would play them fast.
        """
        if not pace:
            return t0
        t_video = float(cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
        offset = t_video if (math.isfinite(t_video) and t_video > 0) else n * pace
        wait = t0 + offset - time.monotonic()
        if wait > 0:
            self._stop.wait(wait)
        elif wait < -1.0:
            t0 = time.monotonic() - offset  # fell behind: don't burst
        return t0


def open_source(
    camera: CameraConfig,
    url: str,
    *,
    replay: bool = False,
    sample_fps: float | None = None,
) -> FrameSource:
    """Open the camera's source.

    Args:
        camera: The camera (its ``source`` holds timeouts, back-off, loop, realtime).
        url: Resolved URL (from ``build_source_url``) or file path.
        replay: Files only: deterministic playback (see :class:`ReplaySource`).
        sample_fps: Replay: frames per video second to return.

    Returns:
        A started source. Live sources never raise for connection problems: they
        report them through ``stats()``.

    Raises:
        SourceError: ``replay`` on something that is not a readable video file.
    """
    if replay:
        if _kind(url) != "file":
            raise SourceError(
                f"replay needs a video file, camera {camera.id} has a "
                f"{_kind(url)} source"
            )
        return ReplaySource(
            camera.id,
            url,
            sample_fps=sample_fps,
            loop=camera.source.loop,
            src=camera.source,
        )
    # Convert to BGR at most at twice the detection rate (the rest only gets grabbed).
    return LiveSource(camera.id, url, camera.source, decode_fps=2.0 * camera.detect_fps)
