"""Occupancy from entrance lines, and the pipeline factory over a real config."""

from __future__ import annotations

import datetime as dt

import pytest

from config.base import COCO_CLASSES
from config.schema import CameraConfig
from monitor.events import EventKind, decode_event, encode_event
from pipelines.crowding import CrowdingPipeline
from pipelines.factory import build_pipelines
from pipelines.loitering import LoiteringPipeline
from pipelines.occupancy import OccupancyPipeline
from pipelines.vehicle_flow import VehicleFlowPipeline

CAR, PERSON = 2, 0
RESET_UTC = dt.datetime(2026, 6, 1, 7, 0, tzinfo=dt.UTC).timestamp()  # 03:00 EDT

CAMERA = CameraConfig.model_validate(
    {
        "id": "lot",
        "source": {"url": "lot.mp4"},
        "timezone": "America/New_York",
        "zones": [{"id": "z", "polygon": [[0.2, 0.2], [0.8, 0.2], [0.8, 0.8]]}],
        "lines": [
            {"id": "a", "start": [0.0, 0.5], "end": [0.5, 0.5], "in_direction": "down"},
            {"id": "b", "start": [0.5, 0.3], "end": [1.0, 0.3], "in_direction": "up"},
        ],
        "rules": {
            "loitering": [{"id": "loit", "zone": "z"}],
            "crowding": [{"id": "crowd", "zone": "z"}],
            "vehicle_flow": [
                {"id": "fa", "line": "a", "hysteresis": 0.02},
                {"id": "fb", "line": "b", "hysteresis": 0.02},
            ],
            "occupancy": [{"id": "occ", "lines": ["fa", "fb"], "reset_time": "03:00"}],
        },
    }
)

A_IN = [(25, y) for y in (35, 45, 55, 65)]  # down across line a (y=50, x<50)
A_OUT = A_IN[::-1]
B_IN = [(75, y) for y in (45, 35, 25, 15)]  # up across line b (y=30, x>50)
B_OUT = B_IN[::-1]


def test_factory_builds_ordered_pipelines() -> None:
    pipes = build_pipelines(CAMERA, COCO_CLASSES)
    kinds = [type(p) for p in pipes]
    assert kinds == [
        LoiteringPipeline,
        CrowdingPipeline,
        VehicleFlowPipeline,
        VehicleFlowPipeline,
        OccupancyPipeline,
    ]
    occ = pipes[-1]
    assert occ.flows == (pipes[2], pipes[3])


def test_factory_rejects_missing_classes() -> None:
    with pytest.raises(ValueError, match="detector has no class"):
        build_pipelines(CAMERA, ("person",))


def test_occupancy_counts_never_negative_and_resets_daily(rt) -> None:
    pipes = build_pipelines(CAMERA, COCO_CLASSES)
    sim = rt.Sim(pipes, ts0=RESET_UTC - 50)
    t = 0.0
    moves = [(1, A_IN), (2, A_IN), (3, B_IN), (4, B_OUT), (5, A_OUT), (6, A_OUT)]
    moves += [(7, B_OUT), (8, [(25, 60)] * 4)]  # 8 never crosses
    for tid, pts in moves:
        for x, y in pts:
            sim.step(t, [(tid, x, y, CAR)])
            t += 0.5
        sim.step(t, [], [tid])
        t += 2.5
    assert t < 50
    sim.step(55.0, [(9, 5, 5, PERSON)])  # a person; nobody counts
    sim.step(60.0, [])  # 03:00 EDT: the day ends
    for x, y in A_IN:
        t = 61 + (y - 35) / 20
        sim.step(t, [(10, x, y, CAR)])
    occ = [e for _, e in sim.log if e.kind is EventKind.OCCUPANCY]
    got = [
        (e.state.value, e.payload.occupancy, e.payload.entered, e.payload.exited)
        for e in occ
    ]
    assert got == [
        ("start", 1, 1, 0),
        ("update", 2, 2, 0),
        ("update", 3, 3, 0),
        ("update", 2, 3, 1),
        ("update", 1, 3, 2),
        ("update", 0, 3, 3),
        ("update", 0, 3, 4),  # never negative
        ("end", 0, 3, 4),
        ("start", 1, 1, 0),
    ]
    first_day = {e.event_id for e in occ[:8]}
    assert len(first_day) == 1 and occ[8].event_id not in first_day
    assert [e.revision for e in occ[:8]] == list(range(8))
    assert occ[0].payload.day_start.timestamp() == RESET_UTC - 86400
    assert occ[7].ended_at.timestamp() == RESET_UTC
    assert occ[8].payload.day_start.timestamp() == RESET_UTC
    for e in occ:
        assert decode_event(encode_event(e)) == e


def test_example_config_builds(rt) -> None:
    from pathlib import Path

    from config.loader import load_config

    root = Path(__file__).resolve().parents[3]
    app = load_config(root / "config" / "campus.example.yaml")
    for cam in app.cameras:
        pipes = build_pipelines(cam, COCO_CLASSES)
        assert len(pipes) == sum(
            len(getattr(cam.rules, k))
            for k in ("loitering", "crowding", "vehicle_flow", "occupancy")
        )
        sim = rt.Sim(pipes)
        for i in range(5):
            assert sim.step(i * 0.2, []) == []


def _occ_rows(events):
    return [
        (e.state.value, e.payload.occupancy, e.payload.entered, e.payload.exited)
        for e in events
        if e.kind is EventKind.OCCUPANCY
    ]


def _cross(sim, t0: float, tid: int, pts) -> float:
    t = t0
    for x, y in pts:
        sim.step(t, [(tid, x, y, CAR)])
        t += 0.5
    sim.step(t, [], [tid])
    return t + 2.5


def test_occupancy_survives_a_worker_restart(rt, tmp_path) -> None:
    """Bug: a worker restart set the lot's occupancy back to 0 mid-day (carried over
    from session 1). The day's numbers and event now come back from the state file."""
    from monitor.state import RuleStateStore

    store = RuleStateStore(tmp_path / "state" / "lot.json", "lot")
    pipes = build_pipelines(CAMERA, COCO_CLASSES)
    sim = rt.Sim(pipes, ts0=RESET_UTC - 3600)
    t = 0.0
    for tid, pts in [(1, A_IN), (2, A_IN), (3, B_IN)]:
        t = _cross(sim, t, tid, pts)
        assert store.save(pipes)
    assert not store.save(pipes)  # nothing changed: no write
    before = [e for _, e in sim.log if e.kind is EventKind.OCCUPANCY]

    # Restart: new pipelines (fresh tracker ids too), same state file.
    pipes2 = build_pipelines(CAMERA, COCO_CLASSES)
    # The occupancy and the open count bucket of both entrance lines.
    assert RuleStateStore(store.path, "lot").restore(pipes2) == 3
    sim2 = rt.Sim(pipes2, ts0=RESET_UTC - 3600)
    t = _cross(sim2, t + 60, 1, A_OUT)
    after = [e for _, e in sim2.log if e.kind is EventKind.OCCUPANCY]
    assert _occ_rows(before) == [
        ("start", 1, 1, 0),
        ("update", 2, 2, 0),
        ("update", 3, 3, 0),
    ]
    assert _occ_rows(after) == [("update", 2, 3, 1)]  # not ("start", 0, 0, 1)
    assert after[0].event_id == before[0].event_id
    assert after[0].revision == before[-1].revision + 1
    assert after[0].payload.day_start == before[0].payload.day_start


def test_restored_day_that_is_over_ends_at_its_reset(rt, tmp_path) -> None:
    """A restart across the daily reset ends the saved day with its own numbers at
    its reset time (not at the restart), then the new day starts at 0."""
    from monitor.state import RuleStateStore

    store = RuleStateStore(tmp_path / "lot.json", "lot")
    pipes = build_pipelines(CAMERA, COCO_CLASSES)
    sim = rt.Sim(pipes, ts0=RESET_UTC - 3600)
    _cross(sim, 0.0, 1, A_IN)
    store.save(pipes)
    first = [e for _, e in sim.log if e.kind is EventKind.OCCUPANCY][0]

    pipes2 = build_pipelines(CAMERA, COCO_CLASSES)
    assert store.restore(pipes2) == 2  # the occupancy and line A's open bucket
    sim2 = rt.Sim(pipes2, ts0=RESET_UTC + 2 * 86400 + 600)  # two resets later
    _cross(sim2, 0.0, 7, A_IN)
    occ = [e for _, e in sim2.log if e.kind is EventKind.OCCUPANCY]
    assert _occ_rows(occ) == [("end", 1, 1, 0), ("start", 1, 1, 0)]
    assert occ[0].event_id == first.event_id and occ[0].revision == 1
    assert occ[0].ended_at.timestamp() == RESET_UTC  # the saved day's own reset
    assert occ[1].event_id != first.event_id
    assert occ[1].payload.day_start.timestamp() == RESET_UTC + 2 * 86400


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"rule_id": "other"}, "rule"),
        ({"occupancy": -1}, "negative"),
        ({"occupancy": 5, "entered": 3}, "more than entered"),
        ({"occupancy": 0, "entered": 5, "exited": 1}, "below in - out"),
        ({"day_start": "2026-06-01T03:00:00"}, "naive time"),
        ({"version": 2}, "unknown version"),
        ({"surprise": 1}, "unknown key"),
        ({"event_id": "not-a-uuid"}, "bad uuid"),
    ],
)
def test_bad_saved_occupancy_is_ignored(
    change: dict, why: str, saved_occupancy: dict
) -> None:
    occ = build_pipelines(CAMERA, COCO_CLASSES)[-1]
    good = saved_occupancy
    assert build_pipelines(CAMERA, COCO_CLASSES)[-1].restore(good), "control"
    assert not occ.restore({**good, **change}), why
    assert occ.occupancy == 0 and occ.event_id is None
