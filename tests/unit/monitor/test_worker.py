"""The camera loop (`run_camera`) as a table over frames.

The tracker, rules, evidence recorder and gate are the real ones. The source and the
detector are scripted from a table (the real ones are tested in their own modules and
end to end in tests/integration), so each row states exactly what the camera saw.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from config.rules import CrowdingRuleConfig
from config.schema import CameraConfig, EvidenceConfig
from config.tracker import TrackerConfig
from monitor.events import CameraHeartbeat, Event, EventKind, EventState
from monitor.evidence import EvidenceRecorder
from monitor.regions import Plan
from monitor.sources import SourceStats
from monitor.tracker import Tracker
from monitor.types import Detections, Frame
from monitor.worker import WorkerParts, next_period, run_camera
from pipelines.factory import build_pipelines

W, H = 320, 240
T0 = 1_800_000_000.0  # a fixed wall clock: the schedule in force never depends on "now"


@dataclass
class Row:
    """One table row: what the source and detector produce at time ``t``."""

    t: float
    boxes: list[list[float]] | None  # None: the detector raises on this frame
    state: str = "online"
    frame: bool = True  # False: no frame arrived (read timed out)


class ScriptedSource:
    """A FrameSource that replays a table (states, frames) deterministically."""

    camera_id = "cam"

    def __init__(self, rows: list[Row]) -> None:
        self.rows = list(rows)
        self._stats = SourceStats(state="connecting")
        self.current: Row | None = None
        self.closed = False

    @property
    def ended(self) -> bool:
        return not self.rows

    def read(self, timeout_s: float) -> Frame | None:
        if not self.rows:
            self._stats = replace(self._stats, state="ended")
            return None
        row = self.rows.pop(0)
        self.current = row
        self._stats = replace(
            self._stats,
            state=row.state,
            last_error="" if row.state == "online" else "gone",
        )
        if not row.frame:
            return None
        img = np.full((H, W, 3), 90, np.uint8)
        return Frame("cam", int(row.t * 10), T0 + row.t, 1000.0 + row.t, img)

    def stats(self) -> SourceStats:
        return self._stats

    def close(self) -> None:
        self.closed = True


class ScriptedDetector:
    """Returns the current row's person boxes (or raises for ``boxes=None``)."""

    class_names = ("person", "bicycle", "car")
    input_size = (416, 416)
    model_sha256 = "ab" * 32

    def __init__(self, source: ScriptedSource) -> None:
        self.source = source

    def detect(self, image: np.ndarray) -> Detections:
        row = self.source.current
        assert row is not None
        if row.boxes is None:
            raise RuntimeError("inference failed")
        n = len(row.boxes)
        return Detections(
            xyxy=np.asarray(row.boxes, np.float32).reshape(n, 4),
            confidence=np.full(n, 0.9),
            class_id=np.zeros(n),
        )

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        return [self.detect(i) for i in images]


class ListSink:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.heartbeats: list[CameraHeartbeat] = []

    def publish(self, event: Event) -> None:
        self.events.append(event)

    def publish_heartbeat(self, hb: CameraHeartbeat) -> None:
        self.heartbeats.append(hb)


CAMERA = CameraConfig.model_validate(
    {
        "id": "cam",
        "source": {"url": "/dev/null"},
        "detect_fps": 5,
        "gating": {"mode": "full"},
        "evidence": {"pre_s": 1, "post_s": 1, "buffer_s": 4, "buffer_width": 160},
        "zones": [{"id": "bench", "polygon": [[0.2, 0.2], [0.8, 0.2], [0.8, 0.9], [0.2, 0.9]]}],
        "rules": {
            "loitering": [
                {"id": "loiter", "zone": "bench", "min_dwell_s": 2, "entry_s": 0.2,
                 "grace_s": 0.6, "update_s": 1, "cooldown_s": 5}
            ]
        },
    }
)  # fmt: skip

PERSON = [[140.0, 80.0, 180.0, 200.0]]  # bottom centre (160, 200): inside the zone


def make_parts(
    cam: CameraConfig, rows: list[Row], **extra: object
) -> tuple[WorkerParts, ListSink]:
    """Scripted source and detector, real tracker and pipelines for ``cam``."""
    src = ScriptedSource(rows)
    det = ScriptedDetector(src)
    sink = ListSink()
    parts = WorkerParts(
        source=src,
        detector=det,
        tracker=Tracker(TrackerConfig(lost_buffer_s=0.5)),
        pipelines=build_pipelines(cam, det.class_names),
        sink=sink,
        **extra,  # type: ignore[arg-type]
    )
    return parts, sink


def run(
    rows: list[Row], tmp_path: Path, evidence: bool = True
) -> tuple[ListSink, object]:
    parts, sink = make_parts(CAMERA, rows)
    if evidence:
        parts.evidence = EvidenceRecorder("cam", CAMERA.evidence, tmp_path)
    stats = run_camera(
        CAMERA,
        parts,
        threading.Event(),
        replay=True,
        model_sha256=ScriptedDetector.model_sha256,
    )
    if parts.evidence is not None:
        parts.evidence.close()
        for ev in parts.evidence.poll():
            sink.publish(ev)
    return sink, stats


def rows_between(
    t0: float, t1: float, boxes: list[list[float]] | None, **kw: object
) -> list[Row]:
    return [Row(round(t, 3), boxes, **kw) for t in np.arange(t0, t1, 0.2)]  # type: ignore[arg-type]


def test_loitering_start_update_end_with_evidence(tmp_path: Path) -> None:
    """A person stands in the zone 4 s, then leaves: start (with snapshot and clip),
    updates, end; every event stamped with the model hash."""
    rows = rows_between(0, 4.0, PERSON) + rows_between(4.0, 6.0, [])
    sink, stats = run(rows, tmp_path)
    loiter = [e for e in sink.events if e.kind is EventKind.LOITERING]
    states = [e.state for e in loiter]
    assert states[0] is EventState.START and EventState.END in states
    assert EventState.UPDATE in states
    assert len({e.event_id for e in loiter}) == 1
    assert all(e.model_sha256 == "ab" * 32 for e in sink.events)
    start = next(e for e in loiter if e.state is EventState.START and e.media)
    snap = next(m for m in start.media if m.role == "snapshot")
    data = (tmp_path / snap.path).read_bytes()
    assert hashlib.sha256(data).hexdigest() == snap.sha256 and data[:2] == b"\xff\xd8"
    clips = [m for e in sink.events for m in e.media if m.role == "clip"]
    assert len(clips) == 1 and (tmp_path / clips[0].path).stat().st_size > 0
    assert stats.frames == len(rows) and stats.detector_errors == 0  # type: ignore[attr-defined]


def test_detector_error_is_a_predict_only_step(tmp_path: Path) -> None:
    """Regression guard: an exception in inference must not end the camera loop
    nor break the dwell (the tracker coasts through the failed frame)."""
    rows = (
        rows_between(0, 1.4, PERSON) + [Row(1.4, None)] + rows_between(1.6, 3.2, PERSON)
    )
    sink, stats = run(rows, tmp_path, evidence=False)
    assert stats.detector_errors == 1  # type: ignore[attr-defined]
    assert stats.frames == len(rows)  # type: ignore[attr-defined]
    starts = [e for e in sink.events if e.state is EventState.START]
    assert len(starts) == 1 and starts[0].payload.tracker_id is not None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (["online", "online", "offline", "offline", "online"], ["offline", "online"]),
        (["connecting", "online", "online"], []),  # first connect is not news
        (["online", "offline", "online", "offline"], ["offline", "online", "offline"]),
    ],
)
def test_source_transitions_become_health_events(
    states: list[str], expected: list[str], tmp_path: Path
) -> None:
    rows = [
        Row(i * 0.2, [], state=s, frame=s == "online") for i, s in enumerate(states)
    ]
    sink, _ = run(rows, tmp_path, evidence=False)
    health = [e for e in sink.events if e.kind is EventKind.CAMERA_HEALTH]
    assert [e.payload.status for e in health] == expected  # type: ignore[union-attr]
    assert all(e.state is EventState.INSTANT for e in health)


def test_heartbeats_and_stop_state(tmp_path: Path) -> None:
    sink, _ = run(rows_between(0, 1.0, []), tmp_path, evidence=False)
    assert sink.heartbeats, "no heartbeat sent"
    assert sink.heartbeats[-1].state.value == "stopped"
    assert all(hb.camera_id == "cam" for hb in sink.heartbeats)


def test_max_frames_and_stop_event(tmp_path: Path) -> None:
    src = ScriptedSource(rows_between(0, 10, []))
    det = ScriptedDetector(src)
    parts = WorkerParts(
        source=src, detector=det, tracker=Tracker(), pipelines=[], sink=ListSink()
    )
    stats = run_camera(CAMERA, parts, threading.Event(), replay=True, max_frames=7)
    assert stats.frames == 7
    stop = threading.Event()
    stop.set()
    assert run_camera(CAMERA, parts, stop, replay=True).frames == 0


def test_evidence_config_bounds_apply() -> None:
    assert EvidenceConfig(pre_s=0, post_s=0).clips is True


@pytest.mark.parametrize(
    ("gating", "plan", "reason", "fps"),
    [
        ({}, Plan.SKIP, "idle", 5.0),  # no adaptive settings: detect_fps
        ({"idle_fps": 1.0}, Plan.SKIP, "idle", 1.0),
        ({"idle_fps": 1.0}, Plan.SKIP, "idle-areas", 1.0),
        ({"idle_fps": 1.0, "active_fps": 10.0}, Plan.REGIONS, "rule-areas", 10.0),
        ({"active_fps": 10.0}, Plan.REGIONS, "refresh", 5.0),
        ({"active_fps": 10.0}, Plan.FULL, "regions-too-large", 5.0),
        ({"idle_fps": 1.0}, None, "", 5.0),  # before the first frame
    ],
)
def test_sampling_rate_adapts_to_activity(
    gating: dict, plan: Plan | None, reason: str, fps: float
) -> None:
    cam = CAMERA.model_copy(update={"gating": CAMERA.gating.model_copy(update=gating)})
    assert next_period(cam, plan, reason) == pytest.approx(1.0 / fps)


class _NoDetections:
    class_names = ("person", "bicycle", "car")
    input_size = (416, 416)
    model_sha256 = "cd" * 32

    def detect(self, image: np.ndarray) -> Detections:
        return Detections.empty()

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        return [self.detect(i) for i in images]


def test_replay_samples_like_live_pacing(tmp_path: Path) -> None:
    """Bug: replay ignored gating.idle_fps/active_fps and sampled every scene at
    detect_fps, so offline results (benchmarks, `hallmonitor replay`) were not what
    the live camera does. A still scene must be sampled at idle_fps, motion at
    detect_fps, by video time."""
    import cv2

    from monitor.motion import MotionDetector
    from monitor.regions import DetectionGate
    from monitor.sources import ReplaySource

    path = tmp_path / "still_then_moving.avi"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (W, H))
    for i in range(150):  # 4 s still, then 2 s of a box sliding across
        img = np.full((H, W, 3), 90, np.uint8)
        if i >= 100:
            x = 20 + 5 * (i - 100)
            img[60:180, x : x + 40] = 230
        out.write(img)
    out.release()
    cam = CAMERA.model_copy(
        update={
            "gating": CAMERA.gating.model_copy(
                update={
                    "mode": "motion",
                    "idle_fps": 1.0,
                    "full_frame_interval_s": 600.0,
                }
            )
        }
    )
    src = ReplaySource("cam", str(path), sample_fps=cam.detect_fps)
    det = _NoDetections()
    parts = WorkerParts(
        source=src,
        detector=det,
        tracker=Tracker(),
        pipelines=[],
        sink=ListSink(),
        gate=DetectionGate(cam.gating, MotionDetector(cam.motion), 416),
    )
    seen: list[float] = []
    run_camera(
        cam,
        parts,
        threading.Event(),
        replay=True,
        observer=lambda f, e: seen.append(f.mono),
    )
    t = np.array(seen) - seen[0]
    gaps = np.diff(t)
    still, moving = gaps[t[1:] <= 3.9], gaps[t[1:] >= 4.6]
    assert still.size >= 3 and np.allclose(still[1:], 1.0, atol=0.05)  # idle: 1/s
    assert moving.size >= 4 and np.allclose(moving, 0.2, atol=0.05)  # motion: 5/s


def _lifetime(cam: CameraConfig, rows: list[Row], state_path: Path) -> list[Event]:
    """One worker lifetime over ``rows`` with a rule-state file; its events."""
    from monitor.state import RuleStateStore

    parts, sink = make_parts(cam, rows, state=RuleStateStore(state_path, cam.id))
    parts.state.restore(parts.pipelines, parts.tracker)
    run_camera(cam, parts, threading.Event(), replay=True)
    return sink.events


def test_worker_saves_and_restores_occupancy(tmp_path: Path) -> None:
    """The loop writes rule state when a frame produced events, and a new worker
    built on the same state file carries the lot's occupancy on (restart)."""
    cam = CameraConfig.model_validate(
        {
            "id": "cam",
            "source": {"url": "/dev/null"},
            "detect_fps": 5,
            "gating": {"mode": "full"},
            "lines": [{"id": "gate", "start": [0, 0.5], "end": [1, 0.5]}],
            "rules": {
                "vehicle_flow": [{"id": "flow", "line": "gate", "classes": ["person"]}],
                "occupancy": [{"id": "lot", "lines": ["flow"], "classes": ["person"]}],
            },
        }
    )

    def walk_down(t0: float) -> list[Row]:  # one person across y = 120 px
        return [
            Row(round(t0 + 0.2 * i, 3), [[150.0, y - 40, 170.0, y]])
            for i, y in enumerate(range(60, 200, 14))
        ] + rows_between(t0 + 2.0, t0 + 5.0, [])

    path = tmp_path / "state" / "cam.json"
    occupancy = [
        (e.state.value, e.payload.occupancy)
        for start in (0.0, 100.0)  # two worker lifetimes
        for e in _lifetime(cam, walk_down(start), path)
        if e.kind is EventKind.OCCUPANCY
    ]
    assert occupancy == [("start", 1), ("update", 2)]
    assert json.loads(path.read_text())["rules"]["occupancy:lot"]["occupancy"] == 2


def test_events_left_open_by_a_stopped_worker_are_ended_by_the_next(
    tmp_path: Path,
) -> None:
    """Bug: a loitering event open when the worker stopped (crash, upgrade) never got
    an end, so the review queue showed it as ongoing forever. After a restart too
    long to bridge (47 s) the next worker ends it on its first frame: same event, a
    later revision, ended at the last frame the person was seen in the zone."""

    path = tmp_path / "state" / "cam.json"
    first, second = (
        [e for e in _lifetime(CAMERA, rows, path) if e.kind is EventKind.LOITERING]
        for rows in (rows_between(0, 3.4, PERSON), rows_between(50.0, 51.0, []))
    )
    assert [e.state for e in first] == [EventState.START, EventState.UPDATE]
    assert len(second) == 1
    end = second[0]
    assert end.state is EventState.END and end.event_id == first[-1].event_id
    assert end.revision > first[-1].revision
    assert end.ended_at is not None
    assert end.ended_at.timestamp() == pytest.approx(T0 + 3.2)
    assert end.payload.dwell_s == pytest.approx(3.2)  # type: ignore[union-attr]
    # Ended once: a third worker has nothing left to close.
    saved = json.loads(path.read_text())
    assert saved["open_events"] == {} and "loitering:loiter" not in saved["rules"]


def test_restart_continues_open_visits_and_ends_other_open_events(
    tmp_path: Path, open_loitering_event
) -> None:
    """A worker restarted within MAX_OUTAGE_BRIDGE_S (a crash, an upgrade): the two
    people still on the bench keep their loitering events and the group its crowd
    event (same ids, durations = time watched, no second start), and track ids
    continue after the old ones. An open event no restored pipeline claims (here
    one of a rule since removed from the config) is ended. Before, every restart
    ended all three events and started them again from zero."""
    cam = CAMERA.model_copy(
        update={
            "rules": CAMERA.rules.model_copy(
                update={
                    "crowding": (
                        CrowdingRuleConfig(
                            id="crowd", zone="bench", min_count=2, min_duration_s=1
                        ),
                    )
                }
            )
        }
    )
    two = [[100.0, 80.0, 140.0, 200.0], [200.0, 80.0, 240.0, 200.0]]
    path = tmp_path / "state" / "cam.json"
    first = _lifetime(cam, rows_between(0, 3.0, two), path)
    saved = json.loads(path.read_text())
    assert saved["frame_ts"] == pytest.approx(T0 + 2.8)
    next_id = saved["tracker"]["next_id"]
    stray = open_loitering_event("cam", 2, "removed", "bench", T0)
    saved["open_events"][str(stray.event_id)] = stray.model_dump(mode="json")
    path.write_text(json.dumps(saved))
    # Back 4.2 s after the last frame: less than the loitering grace (0.6 s) only
    # because the restart is paused out.
    second = _lifetime(
        cam, rows_between(7.0, 9.0, two) + rows_between(9.0, 12.5, []), path
    )

    def by_kind(events, kind):
        return [e for e in events if e.kind is kind]

    loiter1, loiter2 = (by_kind(x, EventKind.LOITERING) for x in (first, second))
    ids1 = {e.event_id for e in loiter1}
    assert len(ids1) == 2
    assert {e.event_id for e in loiter2} == ids1 | {stray.event_id}
    assert not any(e.state is EventState.START for e in loiter2)
    ends = [e for e in loiter2 if e.state is EventState.END and e.event_id in ids1]
    assert len(ends) == 2
    # Watched 0-2.8 s, one frame interval, 7-8.8 s: 4.8 s, not 8.8 s.
    for end in ends:
        assert end.payload.dwell_s == pytest.approx(4.8, abs=0.01)  # type: ignore[union-attr]
        assert end.payload.tracker_id >= next_id  # type: ignore[union-attr]
    crowd1, crowd2 = (by_kind(x, EventKind.CROWDING) for x in (first, second))
    (crowd_id,) = {e.event_id for e in crowd1}
    assert [(e.event_id, e.state) for e in crowd2] == [(crowd_id, EventState.END)]
    # The group counts from the tracks' confirmation (0.2 s), loitering from birth.
    assert crowd2[0].payload.duration_s == pytest.approx(4.6, abs=0.01)  # type: ignore[union-attr]
    (stray_end,) = [e for e in loiter2 if e.event_id == stray.event_id]
    assert stray_end.state is EventState.END
    assert stray_end.revision == stray.revision + 1
