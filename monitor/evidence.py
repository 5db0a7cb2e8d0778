"""Per-event evidence: a snapshot JPEG (plus a box overlay) and a short MP4 clip.

A per-camera ring buffer keeps the last ``buffer_s`` seconds of frames, downscaled to
``buffer_width`` (bounded by time, by a hard frame cap, and by a byte budget). An
event asks for a clip from ``pre_s`` before to ``post_s`` after its anchor time; the
frames are collected as they arrive and, once a frame at or past the end has been
pushed (by ``frame.mono``), the clip is handed to a background thread that pipes raw
frames into the imageio-ffmpeg binary: H.264 High, ``yuv420p``, ``+faststart`` MP4,
which Chromium, Firefox and Safari all play.

The clip anchor is the event message's ``ts`` (the frame on which the rule fired),
not ``started_at``: for a loitering ``start`` the dwell began long before and is
usually no longer in the buffer; for instant events the two are equal.

Frames arrive at irregular intervals (the worker samples at ``detect_fps``, frames
can be dropped); the clip is resampled to a constant rate by picking, for every
output tick, the latest frame at or before it, so the clip's duration equals the real
time span it covers rather than ``frames / fps``.

Files are written as ``<media_root>/<camera>/<event uuid>[.boxes].jpg|.mp4`` (names
from :func:`monitor.events.media_name` only), atomically (temp file + rename), with a
sha256 recorded in the returned :class:`~monitor.events.MediaRef`.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import math
import os
import queue
import re
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from config.schema import EvidenceConfig
from monitor.events import Event, MediaRef, media_name
from monitor.types import Detections, Frame

__all__ = ["ClipJob", "EvidenceRecorder", "EvidenceStats", "encode_clip"]

log = logging.getLogger(__name__)

_CAMERA_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MAX_FPS = 30.0
_MAX_PENDING = 32  # clips waiting for post_s frames or for the encoder


@dataclass(slots=True)
class _Buffered:
    mono: float
    ts: float
    image: npt.NDArray[np.uint8]  # (h, w, 3) BGR, downscaled; never mutated


@dataclass(slots=True)
class ClipJob:
    """One clip being collected, then encoded.

    Attributes:
        event: The event that asked for it.
        start_mono: Window start (``frame.mono`` clock), seconds.
        end_mono: Window end, seconds.
        frames: Frames collected so far, oldest first.
    """

    event: Event
    start_mono: float
    end_mono: float
    frames: list[_Buffered] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EvidenceStats:
    """Counters of one recorder.

    Attributes:
        buffered_frames: Frames in the ring buffer now.
        buffered_bytes: Their pixel bytes.
        snapshots: Snapshot files written.
        clips_encoded: Clips finished.
        clips_failed: Clips that could not be encoded (or had no frames).
        clips_dropped: Clip requests refused because too many were pending.
        encode_cpu_s: ffmpeg + piping CPU-seconds, all clips together.
        last_encode_cpu_s: The same for the last clip.
    """

    buffered_frames: int
    buffered_bytes: int
    snapshots: int
    clips_encoded: int
    clips_failed: int
    clips_dropped: int
    encode_cpu_s: float
    last_encode_cpu_s: float


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            os.fchmod(fh.fileno(), 0o644)  # mkstemp's 0600 would hide it from the API
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _even(n: int) -> int:
    return max(2, n - (n % 2))


def _resample(
    monos: npt.NDArray[np.float64], fps: float, end: float
) -> npt.NDArray[np.intp]:
    """Index of the frame shown at every output tick.

    Args:
        monos: ``(N,)`` ascending capture times, seconds.
        fps: Output rate.
        end: Time the clip stops (exclusive), seconds.

    Returns:
        ``(M,)`` indices into ``monos``; ``M = round((end - monos[0]) * fps)``.
    """
    n_out = max(1, round((end - monos[0]) * fps))
    ticks = monos[0] + np.arange(n_out) / fps
    # Latest frame at or before each tick (a small epsilon absorbs float jitter).
    return np.clip(np.searchsorted(monos, ticks + 1e-6, side="right") - 1, 0, None)


def _clip_fps(monos: npt.NDArray[np.float64]) -> float:
    """Output rate: the median input rate, clamped to 1-30 fps."""
    if monos.size < 2:
        return 1.0
    dt = np.diff(monos)
    dt = dt[dt > 1e-4]
    if dt.size == 0:
        return 1.0
    return float(np.clip(round(1.0 / float(np.median(dt))), 1.0, _MAX_FPS))


def encode_clip(
    frames: list[npt.NDArray[np.uint8]],
    monos: npt.NDArray[np.float64],
    out_path: Path,
    *,
    end_mono: float | None = None,
    crf: int = 26,
    threads: int = 1,
    timeout_s: float = 120.0,
) -> tuple[float, float]:
    """Encode frames to an H.264 ``yuv420p`` MP4 with ``+faststart``, atomically.

    Args:
        frames: ``N`` images, each ``(h, w, 3)`` uint8 BGR; resized to the first
            one's (even) size if they differ (a camera changed resolution).
        monos: ``(N,)`` ascending capture times, seconds.
        out_path: Final file; written as a temp file in the same folder, renamed.
        end_mono: Clip end time; default: last frame + one output interval.
        crf: x264 quality (lower is better and larger).
        threads: x264 threads (1 keeps a busy worker box responsive).
        timeout_s: Kill ffmpeg after this long.

    Returns:
        ``(duration_s, cpu_s)``: clip duration and CPU-seconds spent by ffmpeg plus
        this thread (resampling, piping).

    Raises:
        RuntimeError: ffmpeg failed or timed out (message has its stderr tail).
        ValueError: no frames.
    """
    import imageio_ffmpeg

    if not frames:
        raise ValueError("no frames to encode")
    t_cpu = time.thread_time()
    monos = np.asarray(monos, dtype=np.float64)
    fps = _clip_fps(monos)
    end = float(end_mono) if end_mono is not None else float(monos[-1]) + 1.0 / fps
    end = max(end, float(monos[-1]) + 1e-3)
    idx = _resample(monos, fps, end)
    h0, w0 = frames[0].shape[:2]
    w, h = _even(w0), _even(h0)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".mp4", dir=out_path.parent)
    os.close(fd)
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w}x{h}",
        "-framerate", f"{fps:g}", "-i", "pipe:0",
        "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf),
        "-profile:v", "high", "-pix_fmt", "yuv420p", "-threads", str(threads),
        "-movflags", "+faststart", "-f", "mp4", tmp,
    ]  # fmt: skip
    err_fh = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err_fh
    )
    child_cpu = 0.0
    try:
        assert proc.stdin is not None
        try:
            for i in idx:
                img: npt.NDArray[np.uint8] = frames[int(i)]
                if img.shape[0] != h or img.shape[1] != w:
                    img = np.asarray(
                        cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA), np.uint8
                    )
                proc.stdin.write(np.ascontiguousarray(img).data)
        except BrokenPipeError:
            pass  # ffmpeg died; its stderr says why
        finally:
            proc.stdin.close()
        deadline = time.monotonic() + timeout_s
        while True:
            # wait4 gives this child's own rusage (CPU-seconds of the encode).
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                child_cpu = ru.ru_utime + ru.ru_stime
                break
            if time.monotonic() > deadline:
                proc.kill()
                _, status, _ = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                raise RuntimeError(f"ffmpeg timed out after {timeout_s:.0f}s")
            time.sleep(0.01)
        if proc.returncode != 0:
            err_fh.seek(0)
            tail = err_fh.read()[-800:].decode("utf-8", "replace").strip()
            raise RuntimeError(f"ffmpeg exited {proc.returncode}: {tail}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    finally:
        err_fh.close()
        Path(tmp).unlink(missing_ok=True)
    return idx.size / fps, child_cpu + (time.thread_time() - t_cpu)


class EvidenceRecorder:
    """Ring buffer of recent frames; snapshots and clips for events of one camera.

    Args:
        camera_id: Camera id; must be a safe identifier (it names a folder).
        cfg: Buffer length/width, clip pre/post seconds, JPEG quality.
        media_root: Folder holding every camera's media.
        max_frames: Hard cap on buffered frames whatever their rate.
        max_bytes: Hard cap on buffered pixel bytes (default 256 MiB).

    Raises:
        ValueError: ``camera_id`` is not a safe identifier.
    """

    def __init__(
        self,
        camera_id: str,
        cfg: EvidenceConfig,
        media_root: Path,
        *,
        max_frames: int = 900,
        max_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        if not isinstance(camera_id, str) or not _CAMERA_RE.match(camera_id):
            raise ValueError(
                "camera id must be 1-64 characters of letters, digits, '_', '.', '-' "
                "starting with a letter or digit"
            )
        self.camera_id = camera_id
        self.cfg = cfg
        self.media_root = Path(media_root).resolve()
        self.max_frames = max(1, int(max_frames))
        self.max_bytes = max(1, int(max_bytes))
        self._buf: collections.deque[_Buffered] = collections.deque()
        self._buf_bytes = 0
        self._collecting: list[ClipJob] = []
        self._jobs: queue.Queue[ClipJob | None] = queue.Queue()
        self._done: list[Event] = []
        self._lock = threading.Lock()
        self._last_mono = -math.inf
        self._snapshots = 0
        self._clips_ok = 0
        self._clips_failed = 0
        self._clips_dropped = 0
        self._cpu = 0.0
        self._last_cpu = 0.0
        self._in_encoder = 0
        self._abandon = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ frame path
    def push(self, frame: Frame) -> None:
        """Keep a downscaled copy of ``frame``; hand finished clip windows off.

        Cheap: one ``cv2.resize`` (INTER_AREA) when wider than ``buffer_width``.
        A frame whose ``mono`` goes backwards is ignored (clock confusion upstream).
        """
        if frame.camera_id != self.camera_id:
            raise ValueError(
                f"frame of camera {frame.camera_id!r} pushed to recorder of "
                f"{self.camera_id!r}"
            )
        if frame.mono < self._last_mono:
            log.warning(
                "camera %s: frame %d goes back in time; not buffered",
                self.camera_id,
                frame.seq,
            )
            return
        self._last_mono = frame.mono
        img = frame.image
        h, w = img.shape[:2]
        tw = min(self.cfg.buffer_width, w)
        th = max(2, round(h * tw / w))
        tw, th = _even(tw), _even(th)
        if (tw, th) != (w, h):
            small = np.asarray(
                cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA), np.uint8
            )
        else:
            small = img.copy()  # the caller may reuse its buffer
        item = _Buffered(frame.mono, frame.ts, small)
        self._buf.append(item)
        self._buf_bytes += small.nbytes
        horizon = frame.mono - self.cfg.buffer_s
        while len(self._buf) > 1 and (
            self._buf[0].mono < horizon
            or len(self._buf) > self.max_frames
            or self._buf_bytes > self.max_bytes
        ):
            self._buf_bytes -= self._buf.popleft().image.nbytes
        if self._collecting:
            still: list[ClipJob] = []
            for job in self._collecting:
                if job.start_mono <= frame.mono <= job.end_mono:
                    job.frames.append(item)
                if frame.mono >= job.end_mono:
                    self._submit(job)
                else:
                    still.append(job)
            self._collecting = still

    def snapshot(
        self,
        event: Event,
        frame: Frame,
        detections: Detections | None = None,
        highlight_xyxy: tuple[float, float, float, float] | None = None,
    ) -> tuple[MediaRef, ...]:
        """Write the full-resolution snapshot (and a box overlay when a box is given).

        Args:
            event: The event (its camera and UUID name the files).
            frame: The frame to save, ``(H, W, 3)`` BGR.
            detections: Drawn thin in the overlay for context (``(N, 4)`` xyxy).
            highlight_xyxy: The box the event is about, in ``frame`` pixels; when
                given, ``<uuid>.boxes.jpg`` is written too.

        Returns:
            ``(snapshot,)`` or ``(snapshot, snapshot_boxes)`` MediaRefs; a file that
            could not be written (disk full, bad box) is logged and left out.
        """
        self._check_event(event)
        q = [int(cv2.IMWRITE_JPEG_QUALITY), int(self.cfg.jpeg_quality)]
        refs: list[MediaRef] = []
        jobs: list[tuple[str, str, npt.NDArray[np.uint8] | None]] = [
            ("", "snapshot", frame.image)
        ]
        if highlight_xyxy is not None:
            jobs.append(("boxes", "snapshot_boxes", None))
        for variant, role, img in jobs:
            try:
                if img is None:
                    img = _draw_boxes(frame.image, detections, highlight_xyxy)  # type: ignore[arg-type]
                ok, buf = cv2.imencode(".jpg", img, q)
                if not ok:
                    raise RuntimeError("JPEG encoding failed")
                refs.append(self._write(event, variant, "jpg", buf.tobytes(), role))
            except (OSError, RuntimeError, ValueError, cv2.error) as exc:
                # Evidence must never stop a worker: log and go on without it.
                log.error(
                    "camera %s: %s for event %s failed: %s",
                    self.camera_id,
                    role,
                    event.event_id,
                    exc,
                )
        self._snapshots += len(refs)
        return tuple(refs)

    def request_clip(self, event: Event) -> None:
        """Start collecting a clip ``[ts - pre_s, ts + post_s]`` for ``event``.

        Frames already buffered inside the window are taken now; later ones as they
        are pushed. No-op when ``cfg.clips`` is off.
        """
        self._check_event(event)
        if not self.cfg.clips or self._closed:
            return
        if (
            len(self._collecting) + self._jobs.qsize() + self._in_encoder
            >= _MAX_PENDING
        ):
            self._clips_dropped += 1
            log.warning(
                "camera %s: %d clips pending; no clip for event %s",
                self.camera_id,
                _MAX_PENDING,
                event.event_id,
            )
            return
        if self._buf:
            last = self._buf[-1]
            # Map the event's wall time onto the monotonic clock through the newest
            # frame (both clocks are stamped on every frame).
            anchor = min(last.mono, last.mono + (event.ts.timestamp() - last.ts))
        else:
            anchor = self._last_mono if math.isfinite(self._last_mono) else 0.0
        job = ClipJob(event, anchor - self.cfg.pre_s, anchor + self.cfg.post_s)
        job.frames = [b for b in self._buf if job.start_mono <= b.mono <= job.end_mono]
        if self._buf and self._buf[-1].mono >= job.end_mono:
            self._submit(job)
        else:
            self._collecting.append(job)

    def poll(self) -> list[Event]:
        """Events whose clip is finished, re-sent with ``media=(clip,)`` (same revision)."""
        with self._lock:
            out, self._done = self._done, []
        return out

    def stats(self) -> EvidenceStats:
        """Current counters."""
        return EvidenceStats(
            buffered_frames=len(self._buf),
            buffered_bytes=self._buf_bytes,
            snapshots=self._snapshots,
            clips_encoded=self._clips_ok,
            clips_failed=self._clips_failed,
            clips_dropped=self._clips_dropped,
            encode_cpu_s=self._cpu,
            last_encode_cpu_s=self._last_cpu,
        )

    def reset(self) -> None:
        """Forget buffered frames (e.g. after a reconnect); pending clips keep theirs."""
        self._buf.clear()
        self._buf_bytes = 0
        self._last_mono = -math.inf

    def close(self, timeout_s: float = 10.0) -> None:
        """Encode pending clips with the frames they have; give up after ``timeout_s``.

        Clips still unfinished at the deadline are abandoned (logged, counted as
        failed); :meth:`poll` afterwards returns the ones that finished.
        """
        if self._closed:
            return
        self._closed = True
        for job in self._collecting:
            self._submit(job)
        self._collecting = []
        if self._thread is None:
            return
        self._jobs.put(None)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._abandon.set()
            log.warning(
                "camera %s: clip encoding still running after %.1fs; abandoning",
                self.camera_id,
                timeout_s,
            )
            self._thread.join(5.0)

    # -------------------------------------------------------------- helpers
    def _check_event(self, event: Event) -> None:
        if event.camera_id != self.camera_id:
            raise ValueError(
                f"event of camera {event.camera_id!r} given to recorder of "
                f"{self.camera_id!r}"
            )

    def _path(self, event: Event, variant: str, ext: str) -> tuple[str, Path]:
        rel = media_name(self.camera_id, event.event_id, variant, ext)
        # Both parts were validated (identifier, UUID); this guards future changes.
        path = self.media_root / rel
        if Path(os.path.normpath(path)).parent != self.media_root / self.camera_id:
            raise ValueError(f"media path escapes the media root: {rel!r}")
        return rel, path

    def _write(
        self, event: Event, variant: str, ext: str, data: bytes, role: str
    ) -> MediaRef:
        rel, path = self._path(event, variant, ext)
        _atomic_write(path, data)
        return MediaRef(
            role=role,  # type: ignore[arg-type]
            path=rel,
            sha256=_sha256(data),
            bytes=len(data),
            content_type="image/jpeg" if ext == "jpg" else "video/mp4",
        )

    def _submit(self, job: ClipJob) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._encoder, name=f"clips:{self.camera_id}", daemon=True
            )
            self._thread.start()
        self._jobs.put(job)

    def _encoder(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if self._abandon.is_set():
                self._clips_failed += 1
                continue
            self._in_encoder = 1
            try:
                self._encode(job)
            finally:
                self._in_encoder = 0

    def _encode(self, job: ClipJob) -> None:
        ev = job.event
        if not job.frames:
            self._clips_failed += 1
            log.warning(
                "camera %s: no frames for the clip of event %s",
                self.camera_id,
                ev.event_id,
            )
            return
        try:
            rel, path = self._path(ev, "", "mp4")
            monos = np.fromiter((f.mono for f in job.frames), np.float64)
            end = min(job.end_mono, float(monos[-1]) + 1.0)
            duration, cpu = encode_clip(
                [f.image for f in job.frames], monos, path, end_mono=end
            )
            data = path.read_bytes()
        except (OSError, RuntimeError, ValueError) as exc:
            self._clips_failed += 1
            log.error(
                "camera %s: clip for event %s failed: %s",
                self.camera_id,
                ev.event_id,
                exc,
            )
            return
        ref = MediaRef(
            role="clip",
            path=rel,
            sha256=_sha256(data),
            bytes=len(data),
            content_type="video/mp4",
            duration_s=round(duration, 3),
        )
        self._cpu += cpu
        self._last_cpu = cpu
        self._clips_ok += 1
        log.info(
            "camera %s: clip %s, %d frames, %.2fs, %.2f CPU-s",
            self.camera_id,
            rel,
            len(job.frames),
            duration,
            cpu,
        )
        with self._lock:
            self._done.append(ev.model_copy(update={"media": (ref,)}))


def _draw_boxes(
    image: npt.NDArray[np.uint8],
    detections: Detections | None,
    highlight: tuple[float, float, float, float],
) -> npt.NDArray[np.uint8]:
    """Copy of ``image`` with all detections (thin) and the event's box (thick red).

    Args:
        image: ``(H, W, 3)`` BGR.
        detections: ``(N, 4)`` xyxy boxes in ``image`` pixels, or None.
        highlight: ``(x1, y1, x2, y2)`` of the box the event is about.
    """
    out = image.copy()
    h, w = out.shape[:2]
    lw = max(2, round(min(h, w) / 240))
    if detections is not None and len(detections):
        boxes = np.clip(np.rint(detections.xyxy), 0, [w - 1, h - 1, w - 1, h - 1])
        for x1, y1, x2, y2 in boxes.astype(np.int32).tolist():
            cv2.rectangle(out, (x1, y1), (x2, y2), (0, 200, 255), max(1, lw // 2))
    hb = np.asarray(highlight, np.float64)
    if hb.shape != (4,) or not np.all(np.isfinite(hb)):
        raise ValueError(f"highlight box must be 4 finite numbers, got {highlight!r}")
    hb = np.clip(np.rint(hb), 0, [w - 1, h - 1] * 2)
    x1, y1, x2, y2 = hb.astype(np.int32).tolist()
    cv2.rectangle(out, (x1, y1), (x2, y2), (0, 0, 255), lw * 2)
    return out
