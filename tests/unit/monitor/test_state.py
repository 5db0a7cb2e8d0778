"""The per-camera rule-state file: atomic, change-only writes; bad files set aside."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from config.base import COCO_CLASSES
from config.schema import CameraConfig
from monitor.state import RuleStateStore, pipeline_key
from pipelines.factory import build_pipelines

CAMERA = CameraConfig.model_validate(
    {
        "id": "lot",
        "source": {"url": "lot.mp4"},
        "zones": [{"id": "z", "polygon": [[0.2, 0.2], [0.8, 0.2], [0.8, 0.8]]}],
        "lines": [{"id": "a", "start": [0.0, 0.5], "end": [1.0, 0.5]}],
        "rules": {
            "loitering": [{"id": "loit", "zone": "z"}],
            "vehicle_flow": [{"id": "fa", "line": "a"}],
            "occupancy": [{"id": "occ", "lines": ["fa"]}],
        },
    }
)


def _file(path: Path, rules: dict, **top) -> Path:
    path.write_text(
        json.dumps({"version": 1, "camera_id": "lot", "rules": rules, **top})
    )
    return path


def test_only_stateful_pipelines_have_keys() -> None:
    keys = [pipeline_key(p) for p in build_pipelines(CAMERA, COCO_CLASSES)]
    assert keys == ["loitering:loit", "vehicleflow:fa", "occupancy:occ"]


def test_round_trip_and_change_only_writes(
    tmp_path: Path, saved_occupancy: dict
) -> None:
    path = _file(
        tmp_path / "lot.json",
        {"occupancy:occ": saved_occupancy, "occupancy:gone": saved_occupancy},
    )
    pipes = build_pipelines(CAMERA, COCO_CLASSES)
    store = RuleStateStore(path, "lot")
    assert store.restore(pipes) == 1
    occ = pipes[-1]
    assert (occ.occupancy, occ.entered, occ.exited, occ.revision) == (2, 3, 1, 4)
    # Same state as loaded, minus the rule that is no longer configured: one write.
    assert store.save(pipes) and not store.save(pipes)
    assert store.writes == 1
    data = json.loads(path.read_text())
    assert data["rules"] == {"occupancy:occ": saved_occupancy}
    occ.occupancy = 1
    assert (
        store.save(pipes)
        and json.loads(path.read_text())["rules"]["occupancy:occ"]["occupancy"] == 1
    )
    assert [p.name for p in tmp_path.iterdir()] == ["lot.json"]  # no temp file left


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json", "not JSON"),
        (b"", "not JSON"),  # e.g. a power cut right after the rename
        (b"[]", "not an object"),
        (
            json.dumps({"version": 9, "camera_id": "lot", "rules": {}}).encode(),
            "version 9",
        ),
        (
            json.dumps({"version": 1, "camera_id": "gym", "rules": {}}).encode(),
            "camera 'gym'",
        ),
        (b" " * (2 << 20), "more than"),
    ],
)
def test_unusable_file_is_set_aside_not_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, problem: str
) -> None:
    path = tmp_path / "lot.json"
    path.write_bytes(content)
    pipes = build_pipelines(CAMERA, COCO_CLASSES)
    with caplog.at_level(logging.WARNING, logger="monitor.state"):
        assert RuleStateStore(path, "lot").restore(pipes) == 0
    assert problem in caplog.text and str(path) in caplog.text
    assert pipes[-1].occupancy == 0
    kept = list(tmp_path.glob("lot.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == content
    assert not path.exists()


def test_bad_rule_state_is_ignored_per_rule(
    tmp_path: Path, saved_occupancy: dict
) -> None:
    path = _file(
        tmp_path / "lot.json", {"occupancy:occ": {**saved_occupancy, "occupancy": -5}}
    )
    pipes = build_pipelines(CAMERA, COCO_CLASSES)
    assert RuleStateStore(path, "lot").restore(pipes) == 0
    assert pipes[-1].occupancy == 0


def test_unwritable_directory_keeps_the_camera_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, saved_occupancy: dict
) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the directory should be")
    pipes = build_pipelines(CAMERA, COCO_CLASSES)
    pipes[-1].restore(saved_occupancy)
    store = RuleStateStore(blocker / "lot.json", "lot")
    with caplog.at_level(logging.WARNING, logger="monitor.state"):
        assert not store.save(pipes)
    assert "cannot save rule state" in caplog.text


def test_open_events_come_back_once_as_ends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, open_loitering_event
) -> None:
    from monitor.events import EventState

    pipes = build_pipelines(CAMERA, COCO_CLASSES)
    ev = open_loitering_event()
    store = RuleStateStore(tmp_path / "lot.json", "lot")
    assert store.save(pipes, {str(ev.event_id): ev})
    data = json.loads(store.path.read_text())
    data["open_events"]["junk"] = {"kind": "loitering"}  # e.g. an older schema
    other = open_loitering_event("gym")
    data["open_events"][str(other.event_id)] = other.model_dump(mode="json")
    store.path.write_text(json.dumps(data))

    store2 = RuleStateStore(store.path, "lot")
    with caplog.at_level(logging.WARNING, logger="monitor.state"):
        store2.restore(pipes)
    assert "ignoring saved open event junk" in caplog.text
    (end,) = store2.orphans()
    assert (end.event_id, end.state, end.revision) == (ev.event_id, EventState.END, 4)
    assert end.ended_at == ev.ts and end.payload == ev.payload
    assert store2.orphans() == []  # once


def test_tracker_ids_continue_after_a_restart(tmp_path: Path) -> None:
    """Track ids in events are never handed to another object: the new worker's
    tracker starts after the saved next id (it used to start at 1 again)."""
    from monitor.tracker import Tracker

    pipes = build_pipelines(CAMERA, COCO_CLASSES)
    tracker = Tracker()
    tracker.next_id = 412
    store = RuleStateStore(tmp_path / "lot.json", "lot")
    assert store.save(pipes, {}, tracker, frame_ts=1_780_000_000.25)
    # The frame time alone is no reason to write; a new id is.
    assert not store.save(pipes, {}, tracker, frame_ts=1_780_000_009.0)
    tracker.next_id = 413
    assert store.save(pipes, {}, tracker, frame_ts=1_780_000_010.5)
    fresh = Tracker()
    store2 = RuleStateStore(store.path, "lot")
    store2.restore(build_pipelines(CAMERA, COCO_CLASSES), fresh)
    assert (fresh.next_id, store2.frame_ts) == (413, 1_780_000_010.5)
    with pytest.raises(ValueError, match="next_id"):
        fresh.next_id = 0
    fresh.next_id = 5  # never backwards
    assert fresh.next_id == 413


@pytest.mark.parametrize("tracker", [{"next_id": "9"}, {"next_id": 0}, [], {}])
def test_bad_tracker_state_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, tracker: object
) -> None:
    from monitor.tracker import Tracker

    path = _file(tmp_path / "lot.json", {}, tracker=tracker, frame_ts="late")
    fresh = Tracker()
    store = RuleStateStore(path, "lot")
    with caplog.at_level(logging.WARNING, logger="monitor.state"):
        store.restore(build_pipelines(CAMERA, COCO_CLASSES), fresh)
    assert "ignoring bad tracker state" in caplog.text
    assert fresh.next_id == 1 and store.frame_ts is None


def test_events_a_restored_pipeline_continues_are_not_ended(
    tmp_path: Path, open_loitering_event
) -> None:
    """The previous worker's open loitering event belongs to the restored visit
    (pipelines/loitering.py restore): it is claimed, not ended as an orphan;
    another open event still is."""
    import numpy as np

    from monitor.types import Detections, Frame

    pipes = build_pipelines(CAMERA, COCO_CLASSES)
    loit = pipes[0]
    image = np.zeros((100, 100, 3), np.uint8)
    det = Detections(
        xyxy=np.array([[46.0, 40.0, 54.0, 50.0]]),
        confidence=np.array([0.9]),
        class_id=np.array([0]),
        tracker_id=np.array([3]),
    )
    events = []
    for k in range(130):  # 65 s in the zone at 2 frames/s: the event starts at 60 s
        frame = Frame("lot", k, 1_780_000_000.0 + k / 2, 100.0 + k / 2, image)
        events += loit.update(frame, det, np.zeros(0, np.int64))
    (start,) = events
    other = open_loitering_event()
    store = RuleStateStore(tmp_path / "lot.json", "lot")
    opened = {str(start.event_id): start, str(other.event_id): other}
    assert store.save(pipes, opened)

    pipes2 = build_pipelines(CAMERA, COCO_CLASSES)
    store2 = RuleStateStore(store.path, "lot")
    assert store2.restore(pipes2) == 1
    assert list(store2.claimed()) == [str(start.event_id)]
    assert [e.event_id for e in store2.orphans()] == [other.event_id]


def test_state_of_cameras_no_longer_configured_is_retired(
    tmp_path: Path, open_loitering_event
) -> None:
    """Bug: the events a camera left open stayed "ongoing" forever once the camera
    was removed from the config (no worker restores or ends them). `hallmonitor
    run` now ends them on start and sets the file aside; running cameras' files are
    untouched, and a file whose events could not be sent is kept for a retry."""
    from monitor.events import EventState
    from monitor.state import retire_state_files

    pipes = build_pipelines(CAMERA, COCO_CLASSES)
    files = {}
    events = {}
    for cam in ("lot", "gym", "pool"):
        ev = open_loitering_event(cam)
        store = RuleStateStore(tmp_path / f"{cam}.json", cam)
        assert store.save(pipes, {str(ev.event_id): ev})
        files[cam], events[cam] = store.path, ev
    (tmp_path / "broken.json").write_text("{not json")

    sent = []

    def flaky(ev):  # the first publish attempt fails, later ones succeed
        if not sent and not getattr(flaky, "failed", False):
            flaky.failed = True  # type: ignore[attr-defined]
            raise ConnectionError("redis down")
        sent.append(ev)

    assert retire_state_files(tmp_path, {"lot"}, flaky) == 1
    assert retire_state_files(tmp_path, {"lot"}, sent.append) == 1
    assert sorted(e.camera_id for e in sent) == ["gym", "pool"]
    for e in sent:
        before = events[e.camera_id]
        assert (e.event_id, e.state, e.revision) == (
            before.event_id,
            EventState.END,
            before.revision + 1,
        )
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "lot.json" in names and "gym.json" not in names and "pool.json" not in names
    assert (
        sum(n.startswith(("gym.json.retired-", "pool.json.retired-")) for n in names)
        == 2
    )
    assert any(n.startswith("broken.json.corrupt-") for n in names)
    # Nothing left to end on the next start.
    assert retire_state_files(tmp_path, {"lot"}, sent.append) == 0


def test_occupancy_day_of_a_removed_rule_is_ended(
    tmp_path: Path, saved_occupancy: dict
) -> None:
    """Bug: the day event of an occupancy rule removed from the config (or whose
    saved state the rule refused) stayed open forever: it is not an "open event"
    and nothing reached its daily reset. The next worker ends it with its saved
    numbers at the camera's last frame; a rule that takes its state is untouched."""
    import datetime as dt

    from monitor.events import EventKind, EventState

    gone = {**saved_occupancy, "rule_id": "old-lot"}
    refused = {
        **saved_occupancy,
        "event_id": "0f1c1d2e-8a4b-4c3d-9e2f-0a1b2c3d4e5f",
        "occupancy": 7,
    }  # more than entered: the rule refuses it
    path = _file(tmp_path / "lot.json",
                 {"occupancy:occ": refused, "occupancy:old-lot": gone},
                 frame_ts=1_780_300_000.5)  # fmt: skip
    pipes = build_pipelines(CAMERA, COCO_CLASSES)
    store = RuleStateStore(path, "lot")
    assert store.restore(pipes) == 0
    ends = {str(e.event_id): e for e in store.orphans()}
    assert set(ends) == {gone["event_id"], refused["event_id"]}
    for e in ends.values():
        assert (e.kind, e.state, e.revision) == (EventKind.OCCUPANCY, EventState.END, 6)
        assert e.camera_id == "lot"
        assert e.ended_at == dt.datetime.fromtimestamp(1_780_300_000.5, dt.UTC)
    assert ends[gone["event_id"]].payload.occupancy == 2  # type: ignore[union-attr]
    assert store.orphans() == []  # once

    # The rule takes a good state: its day goes on, nothing is ended.
    path = _file(tmp_path / "lot.json", {"occupancy:occ": saved_occupancy})
    store = RuleStateStore(path, "lot")
    assert store.restore(build_pipelines(CAMERA, COCO_CLASSES)) == 1
    assert store.orphans() == []
    # A camera removed from the config: its occupancy day is ended on start too.
    from monitor.state import retire_state_files

    gym = {**saved_occupancy, "camera_id": "gym"}
    (tmp_path / "gym.json").write_text(
        json.dumps({"version": 1, "camera_id": "gym", "frame_ts": 1_780_300_000.5,
                    "rules": {"occupancy:occ": gym}})
    )  # fmt: skip
    sent: list = []
    assert retire_state_files(tmp_path, {"lot"}, sent.append) == 1
    assert [(str(e.event_id), e.camera_id, e.state) for e in sent] == [
        (gym["event_id"], "gym", EventState.END)
    ]
