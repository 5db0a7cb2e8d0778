"""Loitering across a worker restart: snapshot, restore, take-over (issue #5).

Each row runs a first pipeline ("worker 1") over a timeline, snapshots it as the
worker does (through JSON), then a fresh pipeline ("worker 2", a different
monotonic clock: it may be after a reboot) restores it, optionally has the restart
paused out as the worker's outage bridge does, and runs the second timeline.
Expected are worker 2's events ``(t, state, tracker_id, dwell_s)`` and whether they
continue worker 1's event. Frames every 0.5 s on a 100×100 image, zone 20..80 px,
``grace_s`` 3, ``reid_distance`` 7 px (as in test_loitering.py).
"""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest

from config.base import COCO_CLASSES
from config.rules import LoiteringRuleConfig
from monitor.events import EventState
from pipelines.loitering import LoiteringPipeline
from tests.unit.pipelines.conftest import LOITER_BASE as BASE
from tests.unit.pipelines.conftest import ZONE

IN = (50, 50)
NEAR = (51, 50)
FAR = (75, 75)  # in the zone, 35 px away
DT = 0.5
MONO2 = 90_000.0  # worker 2's monotonic origin


def p(tid, xy):
    return (tid, xy[0], xy[1], 0)


def rows(t0, t1, objs):
    n = int(round((t1 - t0) / DT))
    return [(round(t0 + i * DT, 6), objs) for i in range(n)]


STAY_15 = rows(0, 15, [p(1, IN)])  # event started at 10 s, last frame 14.5 s

CASES = [
    # name, worker 1, pause before worker 2's first frame, worker 2, expected,
    # worker 2's first message continues worker 1's event
    (
        "person still there: the new track continues visit and event",
        STAY_15,
        5.0,  # first frame at 20 s: the 5.5 s gap less one frame interval
        rows(20, 30, [p(1, NEAR)]) + rows(30, 35, []),
        # 0-14.5 s, one interval, 20-29.5 s: 24.5 s observed; the take-over is
        # announced at once (session 6), with the new track's id
        [(20.0, "update", 1, 15.0), (33.0, "end", 1, 24.5)],
        True,
    ),
    (
        "new tracker id differs from the old one: same visit",
        STAY_15,
        5.0,
        rows(20, 30, [p(7, NEAR)]) + rows(30, 35, []),
        [(20.0, "update", 7, 15.0), (33.0, "end", 7, 24.5)],
        True,
    ),
    (
        "nobody there: the restored event ends after grace with the old track id",
        STAY_15,
        5.0,
        rows(20, 30, []),
        [(23.0, "end", 1, 14.5)],
        True,
    ),
    (
        "restart longer than the bridge: the visit ends at once, a new one starts",
        STAY_15,
        0.0,
        rows(60, 75, [p(5, IN)]),
        [(60.0, "end", 1, 14.5), (70.0, "start", 5, 10.0)],
        True,
    ),
    (
        "visit below the threshold keeps its dwell: start at 10 s of observed time",
        rows(0, 6, [p(1, IN)]),
        3.5,
        rows(10, 20, [p(2, NEAR)]) + rows(20, 25, []),
        [(13.5, "start", 2, 10.0), (23.0, "end", 2, 16.0)],
        False,
    ),
    (
        "wall clock set back an hour: the visit ends after grace, not in an hour",
        STAY_15,
        0.0,
        rows(-3600, -3590, []),
        [(-3597.0, "end", 1, 14.5)],
        True,
    ),
    (
        "someone far away with the old id does not take the visit over",
        STAY_15,
        5.0,
        rows(20, 35, [p(1, FAR)]),
        [(23.0, "end", 1, 14.5), (30.0, "start", 1, 10.0)],
        True,
    ),
]


@pytest.mark.parametrize(
    ("first", "pause", "second", "expected", "continues"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_restart_table(rt, first, pause, second, expected, continues) -> None:
    rule = LoiteringRuleConfig(**BASE)
    w1 = LoiteringPipeline(rule, ZONE, COCO_CLASSES, "UTC")
    sim1 = rt.Sim([w1])
    sim1.run(first)
    saved = json.loads(json.dumps(w1.snapshot()))  # through the state file's JSON

    w2 = LoiteringPipeline(rule, ZONE, COCO_CLASSES, "UTC")
    assert w2.restore(saved)
    first_ids = {e.event_id for _, e in sim1.log}
    assert w2.restored_events() == {str(i) for i in first_ids}
    w2.pause(pause)
    sim2 = rt.Sim([w2], mono0=MONO2)
    sim2.run(second)
    got = [
        (t, e.state.value, e.payload.tracker_id, e.payload.dwell_s) for t, e in sim2.log
    ]
    assert [g[:3] for g in got] == [e[:3] for e in expected]
    assert [g[3] for g in got] == pytest.approx([e[3] for e in expected])
    if sim2.log:
        first_msg = sim2.log[0][1]
        assert (first_msg.event_id in first_ids) is continues
    # Messages of a continued event: later revisions than worker 1's, same start.
    revs = {e.event_id: e.revision for _, e in sim1.log}
    for t, e in sim2.log:
        if e.event_id in revs:
            assert e.revision > revs[e.event_id]
            assert e.started_at == sim1.log[0][1].started_at
        if e.state is EventState.END:
            assert e.ended_at is not None
            if t > 0:  # (not after a clock set back: ended_at is on the old clock)
                assert e.ended_at.timestamp() <= rt.TS0 + t
    # No leftovers: every row of worker 2 is evicted once its tracks are removed.
    for t in rt.ticks(200.0, 260.0, 5.0):
        sim2.step(t, [], removed=[1, 2, 5, 7])
    assert len(w2) == 0 and not w2.open and not w2._placeholder


def test_snapshot_keeps_only_open_visits_in_relative_units(rt) -> None:
    pipe = LoiteringPipeline(LoiteringRuleConfig(**BASE), ZONE, COCO_CLASSES, "UTC")
    sim = rt.Sim([pipe])
    assert pipe.snapshot() is None
    sim.run(rows(0, 12, [p(1, IN), p(2, (10, 50))]))  # 2 is outside the zone
    snap = pipe.snapshot()
    assert snap is not None and snap["rule_id"] == "r" and snap["camera_id"] == "cam"
    (visit,) = snap["visits"]
    assert visit["tracker_id"] == 1
    assert visit["anchor"] == [0.5, 0.5]
    assert visit["box"] == [0.46, 0.4, 0.54, 0.5]
    assert visit["visit_ts"] == pytest.approx(rt.TS0)
    assert visit["last_in_ts"] == pytest.approx(rt.TS0 + 11.5)
    assert visit["event"]["revision"] == 0
    assert snap["ts"] == pytest.approx(rt.TS0 + 11.5)
    # The visit ends: nothing left to keep.
    sim.run(rows(12, 16, []))
    assert pipe.snapshot() is None


def test_restored_state_survives_a_second_restart_before_any_frame(rt) -> None:
    """A worker that dies before its first frame must not lose the visits."""
    rule = LoiteringRuleConfig(**BASE)
    w1 = LoiteringPipeline(rule, ZONE, COCO_CLASSES, "UTC")
    rt.Sim([w1]).run(STAY_15)
    saved = w1.snapshot()
    w2 = LoiteringPipeline(rule, ZONE, COCO_CLASSES, "UTC")
    assert w2.restore(saved)
    assert w2.snapshot() == saved
    w3 = LoiteringPipeline(rule, ZONE, COCO_CLASSES, "UTC")
    assert w3.restore(w2.snapshot())
    sim = rt.Sim([w3], mono0=MONO2)
    sim.run(rows(15, 20, [p(3, NEAR)]))
    # The same event goes on under the new track (announced by one update).
    assert [(e.state.value, e.payload.tracker_id) for _, e in sim.log] == [
        ("update", 3)
    ]
    assert sim.log[0][1].event_id == w1.open[1].event_id and 3 in w3.open


def test_restored_visit_follows_a_resolution_change(rt) -> None:
    """Positions are saved relative to the frame: a camera now sending 200×200
    finds the person at (100, 100), not (50, 50)."""
    rule = LoiteringRuleConfig(**BASE)
    w1 = LoiteringPipeline(rule, ZONE, COCO_CLASSES, "UTC")
    rt.Sim([w1]).run(STAY_15)
    w2 = LoiteringPipeline(rule, ZONE, COCO_CLASSES, "UTC")
    assert w2.restore(w1.snapshot())
    w2.pause(5.0)
    big = np.zeros((200, 200, 3), np.uint8)
    sim = rt.Sim([w2], image=big, mono0=MONO2)
    sim.run(rows(20, 30, [p(4, (101, 100))]) + rows(30, 35, []))
    assert [(e.state.value, e.payload.tracker_id) for _, e in sim.log] == [
        ("update", 4),
        ("end", 4),
    ]
    assert sim.log[0][1].payload.bbox_xyxy == pytest.approx((97, 90, 105, 100))


BAD = [
    ("not a dict", "junk"),
    ("other rule", {"rule_id": "other", "ts": 1.0}),
    ("extra field", {"rule_id": "r", "ts": 1.0, "x": 1}),
    ("nan time", {"rule_id": "r", "ts": math.nan}),
    ("version", {"rule_id": "r", "ts": 1.0, "version": 2}),
    (
        "negative id",
        {
            "rule_id": "r",
            "ts": 1.0,
            "visits": [
                {
                    "tracker_id": -1,
                    "class_id": 0,
                    "anchor": [0.5, 0.5],
                    "box": [0, 0, 1, 1],
                    "visit_ts": 0.0,
                    "last_in_ts": 1.0,
                    "last_seen_ts": 1.0,
                }
            ],
        },
    ),
]


@pytest.mark.parametrize("state", [b[1] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_saved_state_is_refused_with_a_warning(rt, caplog, state) -> None:
    pipe = LoiteringPipeline(LoiteringRuleConfig(**BASE), ZONE, COCO_CLASSES, "UTC")
    with caplog.at_level(logging.WARNING, logger="pipelines.loitering"):
        assert not pipe.restore(state)
    assert "loitering r: ignoring saved state" in caplog.text
    assert pipe.restored_events() == set() and pipe.snapshot() is None
    sim = rt.Sim([pipe])
    sim.run(rows(0, 11, [p(1, IN)]))
    assert [e.state.value for _, e in sim.log] == ["start"]


def test_restored_class_the_detector_no_longer_has(rt) -> None:
    """A visit saved under a class id the new detector lacks (the model changed)
    cannot be taken over by any new track; it ends after grace, no crash."""
    rule = LoiteringRuleConfig(**BASE)
    w1 = LoiteringPipeline(rule, ZONE, COCO_CLASSES, "UTC")
    rt.Sim([w1]).run(STAY_15)
    saved = w1.snapshot()
    saved["visits"][0]["class_id"] = 900
    w2 = LoiteringPipeline(rule, ZONE, COCO_CLASSES, "UTC")
    assert w2.restore(saved)
    w2.pause(5.0)
    sim = rt.Sim([w2], mono0=MONO2)
    sim.run(rows(20, 35, [p(3, NEAR)]))
    got = [(t, e.state.value, e.payload.tracker_id) for t, e in sim.log]
    assert got == [(23.0, "end", 1), (30.0, "start", 3)]
    assert sim.log[0][1].payload.class_name == "900"
