"""One camera's frame loop, and the process shell around it.

``run_camera`` is a plain function holding the loop
``read → evidence buffer → detect → track → rules → evidence → publish → heartbeat``;
it receives every collaborator, so tests drive it with real parts in-process.
``camera_process_main`` is the thin process shell the supervisor starts.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from config.schema import AppConfig, CameraConfig
from monitor.events import (
    CameraHealthPayload,
    CameraHeartbeat,
    CameraState,
    Event,
    EventKind,
    EventState,
    Severity,
)
from monitor.motion import MotionDetector
from monitor.regions import DetectionGate, GateDecision, Plan, detect_plan
from monitor.types import Detections, Frame
from pipelines.base import Pipeline

__all__ = [
    "EventSink",
    "WorkerParts",
    "WorkerStats",
    "bridge_outage",
    "build_parts",
    "camera_process_main",
    "run_camera",
    "track_open_event",
]

log = logging.getLogger(__name__)

# Events that get a snapshot and a clip when they begin.
_EVIDENCE_KINDS = {EventKind.LOITERING, EventKind.CROWDING, EventKind.WRONG_WAY}
# Events never kept as open events: the occupancy day goes on with the same event
# from the pipeline's own saved state, and only its daily reset ends it. Every other
# event still open at a restart is kept, and ended by the next worker unless a
# restored pipeline claims it (loitering, crowding, count buckets: RuleStateStore).
_RESTORED_KINDS = {EventKind.OCCUPANCY}
#: Longest camera outage (s) left out of tracks' and rules' clocks on reconnect
#: (:func:`bridge_outage`); RTSP reconnects take a few seconds.
MAX_OUTAGE_BRIDGE_S = 30.0
#: Seconds between rule-state saves when nothing but open visits changed (events
#: save at once): what a crash can lose of a visit's dwell.
STATE_SAVE_S = 1.0
_EVIDENCE_STATES = {EventState.START, EventState.INSTANT}


class EventSink(Protocol):
    """Where the loop sends what it produces (Redis publisher, stdout, a list)."""

    def publish(self, event: Event) -> None:
        """Send one event message."""
        ...

    def publish_heartbeat(self, hb: CameraHeartbeat) -> None:
        """Send one heartbeat (best effort)."""
        ...


class _Stoppable(Protocol):
    def is_set(self) -> bool: ...


@dataclass
class WorkerStats:
    """Counters of one ``run_camera`` call."""

    frames: int = 0
    detector_calls: int = 0
    detector_errors: int = 0
    events: int = 0
    frame_errors: int = 0
    plans: dict[str, int] = field(default_factory=dict)
    last_plan: tuple[Plan | None, str] = (None, "")
    started_mono: float = field(default_factory=time.monotonic)


@dataclass
class WorkerParts:
    """Collaborators of the loop (all real objects; see ``build_parts``)."""

    source: Any  # monitor.sources.FrameSource
    detector: Any  # monitor.detector.OnnxDetector
    tracker: Any  # monitor.tracker.Tracker
    pipelines: Sequence[Pipeline]
    sink: EventSink
    evidence: Any | None = None  # monitor.evidence.EvidenceRecorder
    health: Any | None = None  # monitor.health frame-health checker
    gate: DetectionGate | None = None  # None: full-frame detection on every frame
    state: Any | None = None  # monitor.state.RuleStateStore (live cameras only)
    last_tracked: Detections | None = None
    on_close: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Close every part that holds resources (best effort, in reverse order)."""
        for fn in reversed(self.on_close):
            try:
                fn()
            except Exception:  # noqa: BLE001 - closing must not mask the real error
                log.exception("error while closing a worker part")


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def _health_event(camera_id: str, ts: float, status: str, message: str) -> Event:
    severity = (
        Severity.HIGH if status in {"offline", "failed", "tamper"} else Severity.LOW
    )
    return Event.new(
        camera_id=camera_id,
        kind=EventKind.CAMERA_HEALTH,
        state=EventState.INSTANT,
        severity=severity,
        ts=_utc(ts),
        started_at=_utc(ts),
        payload=CameraHealthPayload(status=status, message=message[:2000]),  # type: ignore[arg-type]
    )


def _highlight(event: Event) -> tuple[float, float, float, float] | None:
    bbox = getattr(event.payload, "bbox_xyxy", None)
    return tuple(bbox) if bbox is not None else None  # type: ignore[return-value]


class _Rate:
    """Events-per-second over a sliding window of timestamps."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._t: list[float] = []

    def tick(self, now: float) -> None:
        self._t.append(now)
        cut = now - self.window_s
        if self._t[0] < cut:
            self._t = [t for t in self._t if t >= cut]

    def value(self, now: float) -> float:
        recent = [t for t in self._t if t >= now - self.window_s]
        if len(recent) < 2:
            return 0.0
        span = max(recent[-1] - recent[0], 1e-6)
        return (len(recent) - 1) / span


def run_camera(
    camera: CameraConfig,
    parts: WorkerParts,
    stop: _Stoppable,
    *,
    replay: bool = False,
    heartbeat_s: float = 2.0,
    max_frames: int | None = None,
    model_sha256: str = "",
    observer: Callable[[Frame, list[Event]], None] | None = None,
) -> WorkerStats:
    """Run one camera until ``stop`` is set, the source ends, or ``max_frames``.

    Args:
        camera: The camera's validated config.
        parts: Source, detector, tracker, pipelines, sink, optional evidence/health.
        stop: Anything with ``is_set()`` (threading/multiprocessing Event).
        replay: Files only: take every sampled frame, no pacing (the source samples
            by video timestamp, at the period :func:`next_period` picks after each
            frame, as live pacing would).
        heartbeat_s: Seconds between heartbeats (wall clock).
        max_frames: Stop after this many processed frames (tests, benchmarks).
        model_sha256: Stamped on every event.
        observer: Called after each processed frame with the frame and its events
            (benchmarks measure capture-to-event latency with it).

    Returns:
        Counters for the run.
    """
    stats = WorkerStats()
    period = 1.0 / camera.detect_fps
    last_plan: tuple[Plan | None, str] = (None, "")
    next_tick = time.monotonic()
    last_hb = 0.0
    last_state: str | None = None
    # A camera outage between two frames is left out of tracks' and rules' clocks.
    offline_since_frame = False
    last_frame_mono: float | None = None
    last_frame_ts = 0.0
    rate_out = _Rate()
    source = parts.source

    open_events: dict[str, Event] = {}
    # Offline replay samples by video time what live pacing would sample.
    set_period = (
        getattr(source, "set_period", None)
        if replay and getattr(source, "sample_fps", None)
        else None
    )

    def emit(event: Event) -> None:
        if model_sha256 and not event.model_sha256:
            event = event.model_copy(update={"model_sha256": model_sha256})
        parts.sink.publish(event)
        stats.events += 1

    def track_open(event: Event) -> None:
        # Rule messages only: the evidence recorder re-sends a start with its clip
        # later, possibly after the end, and must not reopen the event.
        track_open_event(open_events, event)

    # After a restart: the first frame's gap to the previous worker's last one is
    # bridged like a camera outage (restored visits continue, see bridge_outage).
    restart_from_ts: float | None = None
    last_save = -math.inf
    if parts.state is not None:
        restart_from_ts = parts.state.frame_ts
        # Events a restored pipeline continues stay open; it sends their next
        # message. The previous worker's other open events are ended now.
        open_events.update(parts.state.claimed())
        orphans = parts.state.orphans()
        for ev in orphans:
            emit(ev)
        if orphans:
            log.info(
                "camera %s: ended %d event(s) left open by the previous worker",
                camera.id,
                len(orphans),
            )
            parts.state.save(parts.pipelines, open_events)

    def heartbeat(now_mono: float, state_override: CameraState | None = None) -> None:
        s = source.stats()
        state = state_override or (
            CameraState.ONLINE if s.state == "online" else
            CameraState.STOPPED if s.state == "ended" else
            CameraState.STARTING if s.state == "connecting" else
            CameraState.OFFLINE
        )  # fmt: skip
        hb = CameraHeartbeat(
            camera_id=camera.id,
            state=state,
            ts=dt.datetime.now(dt.UTC),
            fps_in=round(float(s.fps_in), 2),
            fps_out=round(rate_out.value(now_mono), 2),
            frames_dropped=int(s.frames_dropped),
            reconnects_1h=int(s.reconnects_1h),
            last_frame_ts=_utc(s.last_frame_ts) if s.last_frame_ts else None,
            message=(s.last_error or "")[:2000],
            pid=os.getpid(),
            detector_calls=stats.detector_calls,
        )
        parts.sink.publish_heartbeat(hb)

    def check_source_state(now_ts: float) -> None:
        nonlocal last_state, offline_since_frame
        s = source.stats()
        state = s.state
        if state == last_state or state == "connecting":
            return
        if state == "offline":
            offline_since_frame = True
        # Report transitions between online and offline/ended, not the first connect.
        if state == "offline" or (state == "online" and last_state == "offline"):
            emit(_health_event(camera.id, now_ts, state, s.last_error or state))
        elif state == "ended" and not replay:
            emit(
                _health_event(
                    camera.id, now_ts, "offline", s.last_error or "source ended"
                )
            )
        last_state = state

    while not stop.is_set():
        if max_frames is not None and stats.frames >= max_frames:
            break
        now = time.monotonic()
        if now - last_hb >= heartbeat_s:
            heartbeat(now)
            last_hb = now
        if not replay:
            # Sample the newest frame at the target detection rate.
            wait = next_tick - now
            if wait > 0:
                time.sleep(min(wait, 0.5))
                continue
            period = next_period(camera, *last_plan)
            next_tick = max(next_tick + period, now)
        frame = source.read(timeout_s=0.5)
        check_source_state(time.time())
        if frame is None:
            if source.ended:
                break
            continue
        stats.frames += 1
        rate_out.tick(time.monotonic())
        if offline_since_frame and last_frame_mono is not None:
            bridge_outage(camera, parts, frame.mono - last_frame_mono)
        elif restart_from_ts is not None:
            bridge_outage(
                camera, parts, frame.ts - restart_from_ts, "of worker restart"
            )
        restart_from_ts = None
        offline_since_frame = False
        last_frame_mono, last_frame_ts = frame.mono, frame.ts
        try:
            events = _process_frame(camera, parts, frame, stats, model_sha256)
        except Exception:  # noqa: BLE001 - one bad frame must not kill the camera
            stats.frame_errors += 1
            log.exception("camera %s: error processing frame %d", camera.id, frame.seq)
            continue
        last_plan = stats.last_plan
        if set_period is not None:
            set_period(next_period(camera, *last_plan))
        for ev in events:
            emit(ev)
            track_open(ev)
        if parts.state is not None and (
            events or frame.mono - last_save >= STATE_SAVE_S
        ):
            # Occupancy, open visits and events must survive a restart; the store
            # writes only on change.
            parts.state.save(parts.pipelines, open_events, parts.tracker, frame.ts)
            last_save = frame.mono
        if observer is not None:
            observer(frame, events)
        if parts.evidence is not None:
            for ev in parts.evidence.poll():
                emit(ev)
    if parts.state is not None and last_frame_mono is not None:
        # A clean stop (upgrade, config change) keeps the last second too.
        parts.state.save(parts.pipelines, open_events, parts.tracker, last_frame_ts)
    heartbeat(time.monotonic(), CameraState.STOPPED)
    log.info(
        "camera %s: stopped after %d frames, %d events",
        camera.id,
        stats.frames,
        stats.events,
    )
    return stats


def next_period(camera: CameraConfig, plan: Plan | None, reason: str = "") -> float:
    """Seconds until the next sampled frame, adapted to activity.

    Idle scenes (the gate skipped the detector) are sampled at ``gating.idle_fps``;
    activity inside a rule's zone/line area at ``gating.active_fps``; anything else,
    and every camera without those settings, at ``detect_fps``.
    """
    g = camera.gating
    fps = camera.detect_fps
    if plan is Plan.SKIP and g.idle_fps:
        fps = g.idle_fps
    elif reason == "rule-areas" and g.active_fps:
        fps = g.active_fps
    return 1.0 / fps


def track_open_event(open_events: dict[str, Event], event: Event) -> None:
    """Keep ``open_events`` (event id -> last message of each open event, what a
    restart saves and the next worker ends unless a rule claims it) up to date.

    Occupancy days are left out: their pipeline saves and ends them itself.
    """
    if event.kind in _RESTORED_KINDS:
        return
    key = str(event.event_id)
    if event.state in (EventState.START, EventState.UPDATE):
        open_events[key] = event
    else:
        open_events.pop(key, None)


def bridge_outage(
    camera: CameraConfig, parts: WorkerParts, gap_s: float, why: str = "offline"
) -> float:
    """Leave a camera outage out of the tracker's and the rules' clocks.

    Called on the first frame after the source was offline, with the time since the
    last frame before it, and on a restarted worker's first frame, with the time
    since the previous worker's last saved frame (``why="of worker restart"``; its
    restored loitering visits are then taken over by new tracks). The outage (the
    gap less one sampling period) is paused out of the tracker
    (:meth:`monitor.tracker.Tracker.pause`) and of every pipeline that has a
    ``pause(seconds)`` (loitering, crowding), so a person still in a zone after an
    RTSP reconnect continues their visit and event instead of an "ended" and a new
    "started" (unbridged, the gap exceeds ``grace_s`` and the tracker's lost
    buffer). Outages longer than :data:`MAX_OUTAGE_BRIDGE_S` are not bridged:
    after that long, whoever is there is treated as new.

    Returns:
        The seconds paused (0 when nothing was).
    """
    blind = gap_s - 1.0 / camera.detect_fps
    if blind <= 0.0:
        return 0.0
    if blind > MAX_OUTAGE_BRIDGE_S:
        log.info(
            "camera %s: back after %.0f s %s; tracks and visits start afresh",
            camera.id,
            gap_s,
            why,
        )
        return 0.0
    parts.tracker.pause(blind)
    for pipeline in parts.pipelines:
        pause = getattr(pipeline, "pause", None)
        if callable(pause):
            pause(blind)
    log.info(
        "camera %s: back after %.1f s %s; the gap is left out of tracks and "
        "dwell times",
        camera.id,
        gap_s,
        why,
    )
    return blind


def _process_frame(
    camera: CameraConfig,
    parts: WorkerParts,
    frame: Frame,
    stats: WorkerStats,
    model_sha256: str = "",
) -> list[Event]:
    """Detect, track and apply rules to one frame; attach evidence to new events."""
    out: list[Event] = []
    if parts.evidence is not None:
        parts.evidence.push(frame)
    if parts.health is not None:
        for change in parts.health.update(frame):
            out.append(
                _health_event(camera.id, frame.ts, change.status, change.message)
            )
    detections: Detections | None
    decision = (
        parts.gate.update(frame, parts.last_tracked)
        if parts.gate is not None
        else GateDecision(Plan.FULL, np.zeros((0, 4), np.int32), None, "no-gate")
    )
    stats.plans[decision.plan.value] = stats.plans.get(decision.plan.value, 0) + 1
    stats.last_plan = (decision.plan, decision.reason)
    try:
        detections = detect_plan(parts.detector, frame, decision)
        if detections is not None:
            stats.detector_calls += 1
    except Exception as exc:  # noqa: BLE001 - detector errors are per frame
        stats.detector_errors += 1
        log.warning(
            "camera %s: detector failed on frame %d: %s", camera.id, frame.seq, exc
        )
        detections = None  # predict-only step keeps tracks alive
    tracked = parts.tracker.update(detections, frame.mono)
    parts.last_tracked = tracked
    removed = np.asarray(parts.tracker.removed_ids, dtype=np.int64)
    for pipeline in parts.pipelines:
        for ev in pipeline.update(frame, tracked, removed):
            if model_sha256:
                # Stamped before evidence: the clip re-send carries it too.
                ev = ev.model_copy(update={"model_sha256": model_sha256})
            if (
                parts.evidence is not None
                and ev.kind in _EVIDENCE_KINDS
                and ev.state in _EVIDENCE_STATES
            ):
                media = parts.evidence.snapshot(ev, frame, tracked, _highlight(ev))
                ev = ev.model_copy(update={"media": tuple(ev.media) + tuple(media)})
                parts.evidence.request_clip(ev)
            out.append(ev)
    return out


# --------------------------------------------------------------------- assembly
def rule_areas(camera: CameraConfig) -> np.ndarray:
    """``(A, 4)`` relative bounding boxes of the zones and lines the rules use."""
    used_zones = {r.zone for r in camera.rules.loitering}
    used_zones |= {r.zone for r in camera.rules.crowding}
    used_lines = {r.line for r in camera.rules.vehicle_flow}
    pts = [
        np.asarray(z.polygon, np.float32) for z in camera.zones if z.id in used_zones
    ]
    pts += [
        np.asarray([ln.start, ln.end], np.float32)
        for ln in camera.lines
        if ln.id in used_lines
    ]
    if not pts:
        return np.zeros((0, 4), np.float32)
    return np.stack([np.concatenate([p.min(axis=0), p.max(axis=0)]) for p in pts])


def media_root(app: AppConfig) -> Path:
    """Directory holding event media."""
    return Path(app.storage.media_dir or Path(app.data_dir) / "media")


def state_dir(app: AppConfig) -> Path:
    """Directory of the cameras' rule-state files (``monitor/state.py``)."""
    return Path(app.data_dir) / "state"


def state_path(app: AppConfig, camera_id: str) -> Path:
    """The camera's rule-state file (``monitor/state.py``)."""
    return state_dir(app) / f"{camera_id}.json"


def build_parts(
    app: AppConfig,
    camera: CameraConfig,
    sink: EventSink,
    *,
    replay: bool = False,
    evidence: bool = True,
    detector: Any | None = None,
) -> WorkerParts:
    """Create the real collaborators for one camera from its config."""
    from monitor.detector import load_detector
    from monitor.secrets import build_source_url
    from monitor.sources import open_source
    from monitor.tracker import Tracker
    from pipelines.factory import build_pipelines

    det = detector or load_detector(app.detector)
    src_cfg = camera.source
    if src_cfg.detect_url and not replay:
        # The camera's sub-stream: same credentials, far cheaper to decode.
        src_cfg = src_cfg.model_copy(update={"url": src_cfg.detect_url})
    url = build_source_url(src_cfg, app.secrets_file)
    source = open_source(
        camera, url, replay=replay, sample_fps=camera.detect_fps if replay else None
    )
    parts = WorkerParts(
        source=source,
        detector=det,
        tracker=Tracker(app.tracker, det.class_names),
        pipelines=build_pipelines(camera, det.class_names, app.tracker.class_groups),
        sink=sink,
    )
    parts.on_close.append(source.close)
    if not replay:
        from monitor.state import RuleStateStore

        store = RuleStateStore(state_path(app, camera.id), camera.id)
        if store.restore(parts.pipelines, parts.tracker):
            log.info("camera %s: rule state restored from %s", camera.id, store.path)
        parts.state = store
    if camera.gating.mode != "full":
        parts.gate = DetectionGate(
            camera.gating,
            MotionDetector(camera.motion),
            min(det.input_size),
            rule_areas(camera),
        )
    if evidence:
        from monitor.evidence import EvidenceRecorder

        rec = EvidenceRecorder(camera.id, camera.evidence, media_root(app))
        parts.evidence = rec

        def _close_evidence() -> None:
            rec.close()
            for ev in rec.poll():
                sink.publish(ev)

        parts.on_close.append(_close_evidence)
    try:
        from monitor.health import FrameHealth

        parts.health = FrameHealth()
    except ImportError:  # pragma: no cover - optional until health lands
        parts.health = None
    return parts


def camera_process_main(
    config_path: str, camera_id: str, stop_event: Any, detector: Any | None = None
) -> None:
    """Process target: run one camera until ``stop_event`` or SIGTERM/SIGINT.

    The Redis URL comes from env ``HALLMONITOR_REDIS_URL`` (set by ``hallmonitor run``
    after it starts or finds the server), else from the config / ``REDIS_URL``.
    ``detector`` is a client of the shared detector service, or None to load the
    model in this process.
    """
    from config.loader import load_config
    from monitor.logs import setup_logging
    from monitor.publisher import EventPublisher
    from monitor.supervisor import watch_parent

    watch_parent()  # SIGTERM us if the supervisor dies, even by SIGKILL
    setup_logging(os.environ.get("HALLMONITOR_LOG_LEVEL", "INFO"))
    app = load_config(config_path)
    camera = app.camera(camera_id)
    local_stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("camera %s: signal %d, stopping", camera_id, signum)
        local_stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor owns Ctrl-C

    parent = os.getppid()

    class _Either:
        def is_set(self) -> bool:
            # An orphaned worker (parent killed hard) stops too.
            return local_stop.is_set() or stop_event.is_set() or os.getppid() != parent

    redis_url = (
        os.environ.get("HALLMONITOR_REDIS_URL")
        or app.redis.url
        or os.environ.get("REDIS_URL")
    )
    if not redis_url:
        raise RuntimeError(
            "no Redis URL: run through `hallmonitor run` or set REDIS_URL"
        )
    publisher = EventPublisher(
        redis_url,
        stream=app.redis.stream,
        heartbeat_stream=app.redis.heartbeat_stream,
        maxlen=app.redis.maxlen,
        spool_dir=Path(app.data_dir) / "spool" / camera.id,
        spool_max_events=app.redis.spool_max_events,
    )
    parts = None
    try:
        parts = build_parts(app, camera, publisher, detector=detector)
        run_camera(
            camera,
            parts,
            _Either(),
            heartbeat_s=app.supervisor.heartbeat_s,
            model_sha256=parts.detector.model_sha256,
        )
    finally:
        if parts is not None:
            parts.close()
        publisher.close()
