"""Frame-by-frame tables for the loitering rule (pipelines/loitering.py).

Frames every 0.5 s on a 100×100 image; the zone is the square 20..80 px. Each row
is a timeline of segments ``(t0, t1, objects[, removed ids on the first frame])``
and the exact events expected: ``(t, state, tracker_id, dwell_s)``.
"""

from __future__ import annotations

import numpy as np
import pytest

from config.base import COCO_CLASSES
from config.rules import LoiteringRuleConfig, ScheduleConfig
from monitor.events import EventState, decode_event, encode_event
from monitor.types import Detections, Frame
from pipelines.loitering import LoiteringPipeline
from tests.unit.pipelines.conftest import LOITER_BASE as BASE
from tests.unit.pipelines.conftest import ZONE

IN = (50, 50)
OUT = (10, 50)
DT = 0.5


def timeline(segments):
    for seg in segments:
        t0, t1, objs = seg[:3]
        removed = seg[3] if len(seg) > 3 else ()
        n = int(round((t1 - t0) / DT))
        for i in range(n):
            yield (t0 + i * DT, objs, removed if i == 0 else ())


def p(tid, xy, cls=0):
    return (tid, xy[0], xy[1], cls)


FLICKER = [(i * DT, i * DT + DT, [p(1, IN if i % 2 == 0 else OUT)]) for i in range(60)]
SWITCH = [
    (0, 6, [p(1, (50, 50))]),
    (6, 7, []),
    (7, 20, [p(2, (52, 50))]),
    (20, 25, []),
]

NEIGHBOUR_BACK = [
    (13, 20, [p(1, (50, 50)), p(3, (40, 50))]),
    (20, 25, [p(1, (50, 50))]),
    (25, 30, []),
]
NEIGHBOUR = [
    (0, 12, [p(1, (40, 50)), p(2, (50, 50))]),
    (12, 13, [p(1, (50, 50))]),
    (13, 20, [p(1, (50, 50)), p(3, (40, 50))]),
    (20, 25, []),
]

CASES = [
    # name, rule overrides, segments, expected (t, state, tid, dwell)
    (
        "stationary person keeps counting, updates every update_s",
        {"update_s": 5},
        [(0, 30, [p(1, IN)]), (30, 40, [])],
        [
            (10, "start", 1, 10),
            (15, "update", 1, 15),
            (20, "update", 1, 20),
            (25, "update", 1, 25),
            (30, "update", 1, 29.5),
            (33, "end", 1, 29.5),
        ],
    ),
    ("flicker at the zone edge never opens a visit", {}, FLICKER, []),
    (
        "leave and return within grace keeps the dwell",
        {},
        [(0, 6, [p(1, IN)]), (6, 8, [p(1, OUT)]), (8, 20, [p(1, IN)]), (20, 30, [])],
        [(10, "start", 1, 10), (23, "end", 1, 19.5)],
    ),
    (
        "leave beyond grace restarts the dwell",
        {},
        [(0, 6, [p(1, IN)]), (6, 10, [p(1, OUT)]), (10, 25, [p(1, IN)]), (25, 35, [])],
        [(20, "start", 1, 10), (28, "end", 1, 14.5)],
    ),
    (
        "occlusion (no detections) shorter than grace keeps the dwell",
        {},
        [(0, 5, [p(1, IN)]), (5, 7.5, []), (7.5, 15, [p(1, IN)]), (15, 20, [])],
        [(10, "start", 1, 10), (18, "end", 1, 14.5)],
    ),
    (
        "id switch inside the zone continues the dwell",
        {},
        SWITCH,
        [(10, "start", 2, 10), (23, "end", 2, 19.5)],
    ),
    (
        "id switch with the old id removed by the tracker still continues",
        {},
        [SWITCH[0], (6, 7, [], [1]), *SWITCH[2:]],
        [(10, "start", 2, 10), (23, "end", 2, 19.5)],
    ),
    (
        # Session 6: the event moved to the new track silently, so until the next
        # periodic update two open events could name one track (test_rule_invariants).
        "id switch of a loiterer with an open event announces the new track at once",
        {},
        [
            (0, 12, [p(1, (50, 50))]),
            (12, 13, []),
            (13, 20, [p(2, (52, 50))]),
            (20, 25, []),
        ],
        [(10, "start", 1, 10), (13, "update", 2, 13), (23, "end", 2, 19.5)],
    ),
    (
        "id-switch linking disabled: the new id starts from zero",
        {"reid_distance": 0},
        SWITCH,
        [(17, "start", 2, 10), (23, "end", 2, 12.5)],
    ),
    (
        # Session 5: re-linking ignored the class, so in a person + bicycle rule a
        # bicycle left where a person vanished continued the person's dwell.
        "id switch to a track of another class is a different object",
        {"classes": ("person", "bicycle")},
        [SWITCH[0], SWITCH[1], (7, 20, [p(2, (52, 50), cls=1)]), SWITCH[3]],
        [(17, "start", 2, 10), (23, "end", 2, 12.5)],
    ),
    (
        "id switch within a class group (car re-detected as truck) keeps the dwell",
        {"classes": ("car", "truck")},
        [
            (0, 6, [p(1, (50, 50), cls=2)]),
            (6, 7, []),
            (7, 20, [p(2, (52, 50), cls=7)]),
            (20, 25, []),
        ],
        [(10, "start", 2, 10), (23, "end", 2, 19.5)],
    ),
    (
        "new id far from the vanished one is a different person",
        {},
        [SWITCH[0], SWITCH[1], (7, 20, [p(2, (70, 70))]), SWITCH[3]],
        [(17, "start", 2, 10), (23, "end", 2, 12.5)],
    ),
    (
        "new id after grace is a different visit",
        {},
        [(0, 6, [p(1, IN)]), (6, 10, []), (10, 25, [p(2, IN)]), (25, 30, [])],
        [(20, "start", 2, 10), (28, "end", 2, 14.5)],
    ),
    (
        "cooldown delays a second event of the same track",
        {},
        [
            (0, 12, [p(1, IN)]),
            (12, 16, [p(1, OUT)]),
            (16, 45, [p(1, IN)]),
            (45, 50, []),
        ],
        [
            (10, "start", 1, 10),
            (15, "end", 1, 11.5),
            (35, "start", 1, 19),
            (48, "end", 1, 28.5),
        ],
    ),
    (
        "passing through the zone raises nothing",
        {},
        [(0, 3, [p(1, OUT)]), (3, 8, [p(1, IN)]), (8, 20, [p(1, OUT)])],
        [],
    ),
    (
        "other classes are ignored",
        {},
        [(0, 30, [p(1, IN, cls=2)]), (30, 35, [])],
        [],
    ),
    (
        "two people are two events",
        {},
        [(0, 3, [p(1, IN)]), (3, 20, [p(1, IN), p(2, (30, 30))]), (20, 25, [])],
        [
            (10, "start", 1, 10),
            (13, "start", 2, 10),
            (23, "end", 1, 19.5),
            (23, "end", 2, 16.5),
        ],
    ),
    ("empty frames only", {}, [(0, 30, [])], []),
    (
        "entry_s 0: a single in-zone frame opens the visit",
        {"entry_s": 0, "min_dwell_s": 2},
        [(0, 2.5, [p(1, IN)]), (2.5, 8, [])],
        [(2, "start", 1, 2), (5.5, "end", 1, 2)],
    ),
    # Box taken by a neighbour (session 7, concourse_people.avi): P stands at
    # (40, 50) as id 1, Q at (50, 50) as id 2. At 12 s the tracker moves id 1 onto
    # Q (a 1.25-box jump) and drops id 2; P is unseen for a second and comes back
    # as id 3. Before: id 1 kept P's visit on Q, Q's event ended at 15.5 s and P
    # started over (10 px from Q's place, beyond reid_distance).
    (
        "box taken by a neighbour: the new id takes the visit at the left place",
        {},
        NEIGHBOUR,
        [
            (10, "start", 1, 10),
            (10, "start", 2, 10),
            (13, "update", 3, 13),
            (13, "update", 1, 13),
            (23, "end", 1, 19.5),
            (23, "end", 3, 19.5),
        ],
    ),
    (
        "box taken by a neighbour nobody tracked: the jumper starts anew at the jump",
        {},
        [(0, 12, [p(1, (40, 50))]), (12, 13, [p(1, (50, 50))]), *NEIGHBOUR_BACK],
        [
            (10, "start", 1, 10),
            (13, "update", 3, 13),
            (22, "start", 1, 10),
            (23, "end", 3, 19.5),
            (28, "end", 1, 12.5),
        ],
    ),
    (
        "a new id at the left place after grace_s is somebody new",
        {},
        [
            (0, 12, [p(1, (40, 50))]),
            (12, 16, [p(1, (50, 50))]),
            (16, 30, [p(1, (50, 50)), p(3, (40, 50))]),
            (30, 35, []),
        ],
        [
            (10, "start", 1, 10),
            (26, "start", 3, 10),
            (33, "end", 1, 29.5),
            (33, "end", 3, 13.5),
        ],
    ),
    (
        "a walking track's jump hands nothing back (people in file take each "
        "other's places)",
        {},
        [
            *[(k * DT, k * DT + DT, [p(1, (25 + 2 * k, 50))]) for k in range(24)],
            (12, 13, [p(1, (73, 60))]),
            (13, 25, [p(1, (73, 60)), p(3, (71, 50))]),
            (25, 30, []),
        ],
        [
            (10, "start", 1, 10),
            (23, "start", 3, 10),
            (28, "end", 1, 24.5),
            (28, "end", 3, 11.5),
        ],
    ),
    (
        "a new id nearer the jumper than the left place is somebody else",
        {},
        [
            (0, 12, [p(1, (40, 50))]),
            (12, 13, [p(1, (46, 50))]),
            (13, 25, [p(1, (46, 50)), p(3, (44, 50))]),
            (25, 30, []),
        ],
        [
            (10, "start", 1, 10),
            (23, "start", 3, 10),
            (28, "end", 1, 24.5),
            (28, "end", 3, 11.5),
        ],
    ),
    (
        "hand-back off with id-switch linking (reid_distance 0)",
        {"reid_distance": 0},
        [(0, 12, [p(1, (40, 50))]), (12, 13, [p(1, (50, 50))]), *NEIGHBOUR_BACK],
        [(10, "start", 1, 10), (28, "end", 1, 24.5)],
    ),
]


@pytest.mark.parametrize(
    ("overrides", "segments", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_loitering_table(rt, overrides, segments, expected) -> None:
    rule = LoiteringRuleConfig(**{**BASE, **overrides})
    pipe = LoiteringPipeline(rule, ZONE, COCO_CLASSES, "UTC")
    sim = rt.Sim([pipe])
    log = sim.run(timeline(segments))
    got = [(t, e.state.value, e.payload.tracker_id, e.payload.dwell_s) for t, e in log]
    assert [(t, s, i) for t, s, i, _ in got] == [(t, s, i) for t, s, i, _ in expected]
    assert [d for *_, d in got] == pytest.approx([d for *_, d in expected])
    # Lifecycle invariants: one event id per visit, revisions count up from 0.
    by_id: dict = {}
    for t, e in log:
        by_id.setdefault(e.event_id, []).append((t, e))
    for msgs in by_id.values():
        assert [e.revision for _, e in msgs] == list(range(len(msgs)))
        assert msgs[0][1].state is EventState.START
        t0 = msgs[0][0]
        for t, e in msgs:
            assert e.started_at.timestamp() == pytest.approx(rt.TS0 + t0)
            assert e.ts.timestamp() == pytest.approx(rt.TS0 + t)
            assert e.payload.threshold_s == rule.min_dwell_s
            assert decode_event(encode_event(e)) == e
        last = msgs[-1][1]
        if last.state is EventState.END:
            assert last.ended_at is not None and last.ended_at <= last.ts


def test_memory_is_bounded_by_removed_ids(rt) -> None:
    """Tracks that pass through and are removed leave no state behind."""
    rule = LoiteringRuleConfig(**BASE)
    pipe = LoiteringPipeline(rule, ZONE, COCO_CLASSES)
    sim = rt.Sim([pipe])
    t = 0.0
    for tid in range(1, 301):
        for _ in range(4):
            sim.step(t, [p(tid, IN)])
            t += DT
        sim.step(t, [], [tid])
        t += DT
    assert len(pipe) <= 2
    sim.step(t + 10, [])
    assert len(pipe) == 0


def test_vanished_record_expires_after_grace(rt) -> None:
    """A removed loiterer is kept for re-linking only for grace_s, then dropped."""
    pipe = LoiteringPipeline(LoiteringRuleConfig(**BASE), ZONE, COCO_CLASSES)
    sim = rt.Sim([pipe])
    sim.run(timeline([(0, 12, [p(1, IN)]), (12, 13, [], [1])]))
    assert len(pipe) == 1  # visit open, linkable
    sim.run(timeline([(13, 17, [])]))
    assert len(pipe) == 0
    assert [e.state.value for _, e in sim.log] == ["start", "end"]


def test_untracked_detections_do_not_crash(rt, caplog) -> None:
    """Bad input (no tracker_id) is logged and skipped; time still advances."""
    pipe = LoiteringPipeline(LoiteringRuleConfig(**BASE), ZONE, COCO_CLASSES)
    sim = rt.Sim([pipe])
    sim.run(timeline([(0, 12, [p(1, IN)])]))
    bad = Detections(
        xyxy=np.array([[40, 40, 60, 60]], np.float32),
        confidence=np.array([0.9]),
        class_id=np.array([0]),
    )
    frame = Frame("cam", 99, rt.TS0 + 20, rt.MONO0 + 20, sim.image)
    events = pipe.update(frame, bad, np.zeros(0, np.int64))
    assert [e.state.value for e in events] == ["end"]
    assert "tracker_id is None" in caplog.text


def test_zone_rebuilt_on_resolution_change(rt) -> None:
    """Relative zones follow the frame size: (100, 100) is inside on 200×200."""
    pipe = LoiteringPipeline(
        LoiteringRuleConfig(**{**BASE, "min_dwell_s": 2}), ZONE, COCO_CLASSES
    )
    big = np.zeros((200, 200, 3), np.uint8)
    sim = rt.Sim([pipe], image=big)
    log = sim.run(timeline([(0, 3, [p(1, (100, 100))])]))
    assert [e.state.value for _, e in log] == ["start"]
    # (30, 30) is inside the zone on 100×100 but outside it on 200×200.
    sim.run(timeline([(3, 4, []), (10, 15, [p(2, (30, 30))])]))
    assert [e.payload.tracker_id for _, e in sim.log] == [1, 1]  # start, end of 1


def test_unknown_class_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="detector has no class"):
        LoiteringPipeline(LoiteringRuleConfig(**BASE), ZONE, ("car", "bus"))


def test_monotonic_clock_going_back_resets_instead_of_crashing(rt, caplog) -> None:
    """A camera reconnect can restart ``mono``; state is dropped, not corrupted."""
    pipe = LoiteringPipeline(LoiteringRuleConfig(**BASE), ZONE, COCO_CLASSES)
    sim = rt.Sim([pipe])
    sim.run(timeline([(0, 8, [p(1, IN)])]))
    assert len(pipe) == 1
    sim.run(timeline([(-100, -88, [p(1, IN)])]))
    assert "went backwards" in caplog.text
    # A fresh visit from the jump: 10 s later, exactly as on a new pipeline.
    assert [(t, e.state.value, e.payload.dwell_s) for t, e in sim.log] == [
        (-90.0, "start", 10.0)
    ]


# Births: the tracker reports a track from its second detection on and attaches its
# first one. Track 1 is first reported at t = 1.0 (in the zone); rows give its
# birth ``(x, y, age s)`` and the expected start time / dwell of its event
# (min_dwell_s 10, entry_s 1, grace_s 3, frames every 0.5 s).
BIRTH_CASES = [
    ("no birth data: dwell from the first report", None, (11.0, 10.0)),
    (
        "born in the zone 0.5 s earlier: dwell from the birth",
        (52, 50, 0.5),
        (10.5, 10.0),
    ),
    ("born in the zone 2 s earlier (within grace)", (52, 50, 2.0), (9.0, 10.0)),
    ("born outside the zone: dwell from the first report", (10, 50, 0.5), (11.0, 10.0)),
    ("born longer ago than grace_s: ignored", (50, 50, 3.5), (11.0, 10.0)),
]


@pytest.mark.parametrize(
    ("birth", "expected"), [c[1:] for c in BIRTH_CASES], ids=[c[0] for c in BIRTH_CASES]
)
def test_presence_starts_at_the_tracks_first_detection(rt, birth, expected) -> None:
    """Regression (issue #5): dwell counted from the tracker's confirmation, one
    detection step after the person was first seen, so short visits on the MOT
    benchmark reached the threshold a frame too late (or never)."""
    pipe = LoiteringPipeline(LoiteringRuleConfig(**BASE), ZONE, COCO_CLASSES, "UTC")
    sim = rt.Sim([pipe])
    births = None if birth is None else {1: (birth[0], birth[1], 1.0 - birth[2])}
    for t in rt.ticks(1.0, 16.0):
        sim.step(t, [p(1, IN)], births=births)
    starts = [(t, e.payload.dwell_s) for t, e in sim.log if e.state.value == "start"]
    assert starts == [pytest.approx(expected)]


def standing_group_with_swaps(seed: int):  # type: ignore[no-untyped-def]
    """A group standing in the zone for 40 s, frames every 0.2 s, anchors jittering
    by 0.3 px; up to three times, the tracker moves a member's id onto the
    neighbour beside them (whose own id ends) and gives the member a new id after
    0.2-1 s unseen. Returns ``(frames, people)``: ``(t, objects, removed ids)`` per
    frame and the number of people."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 6))
    xs = 32.0 + 9.0 * np.arange(n)  # 9 px apart: boxes are 8 px wide
    ys = 50.0 + rng.uniform(-3.0, 3.0, n)
    ids = list(range(1, n + 1))  # current id of each person
    unseen = [(-1.0, -1.0)] * n  # (from, to) per person
    swaps = sorted(rng.uniform(2.0, 30.0, int(rng.integers(1, 4))))
    swaps = [t for k, t in enumerate(swaps) if k == 0 or t - swaps[k - 1] > 3.0]
    pending: list[tuple[float, int]] = []  # (time, person) of new ids to give
    removals: list[tuple[float, int]] = []
    next_id, frames = n + 1, []
    for step in range(200):
        t = round(step * 0.2, 6)
        if swaps and t >= swaps[0]:
            swaps.pop(0)
            a = int(rng.integers(0, n))
            b = a + 1 if a + 1 < n else a - 1  # the neighbour beside a
            removals.append((t + 1.0, ids[a]))  # a's own id ends
            ids[a] = ids[b]  # b's id moves onto a
            back = t + float(rng.uniform(0.2, 1.0))
            unseen[b] = (t, back)
            pending.append((back, b))
        for when, who in list(pending):
            if t >= when:
                ids[who], next_id = next_id, next_id + 1
                pending.remove((when, who))
        objs = [
            p(ids[k], (xs[k] + rng.normal(0, 0.3), ys[k] + rng.normal(0, 0.3)))
            for k in range(n)
            if not unseen[k][0] <= t < unseen[k][1]
        ]
        gone = [i for when, i in removals if abs(when - t) < 0.1]
        frames.append((t, objs, gone))
    return frames, n


@pytest.mark.parametrize("seed", range(30))
def test_standing_group_with_id_swaps_keeps_one_event_each(rt, seed) -> None:
    """However the tracker trades ids inside a standing group (a neighbour takes
    a member's id, the member comes back under a new one), each person has one
    loitering event, open to the end. Before session 7 each trade ended one
    person's event early (their visit left with the id that had moved on, and
    only new ids may re-link) and gave the other a second event."""
    frames, people = standing_group_with_swaps(seed)
    rule = LoiteringRuleConfig(
        **{**BASE, "min_dwell_s": 3, "entry_s": 0.5, "grace_s": 2, "cooldown_s": 60}
    )
    pipe = LoiteringPipeline(rule, ZONE, COCO_CLASSES, "UTC")
    sim = rt.Sim([pipe])
    for t, objs, gone in frames:
        sim.step(t, objs, gone)
    ends_at = 40.0
    for k in range(20):  # everybody leaves: idle frames end the events
        sim.step(ends_at + 0.2 * k, [])
    events: dict = {}
    for t, e in sim.log:
        events.setdefault(e.event_id, []).append((t, e))
    assert len(events) == people, [
        [(t, e.state.value, e.payload.tracker_id) for t, e in m]
        for m in events.values()
    ]
    for msgs in events.values():
        # On time, or when a person unseen at 3 s (0.2-1 s after a trade) is back.
        assert 3.0 <= msgs[0][0] <= 4.2
        t_end, last = msgs[-1]
        assert last.state is EventState.END and t_end > ends_at
        assert last.payload.dwell_s > 39.0


def test_switched_id_keeps_the_visit_it_continues_not_its_birth(rt) -> None:
    """A new id that continues a vanished visitor (id switch) keeps that visit's
    start; its own (later) birth must not restart the dwell."""
    pipe = LoiteringPipeline(LoiteringRuleConfig(**BASE), ZONE, COCO_CLASSES, "UTC")
    sim = rt.Sim([pipe])
    for t in rt.ticks(0.0, 6.0):
        sim.step(t, [p(1, (50, 50))])
    sim.step(6.0, [])
    for t in rt.ticks(6.5, 12.0):
        sim.step(t, [p(2, (52, 50))], births={2: (52, 50, 6.0)})
    starts = [(t, e.payload.tracker_id) for t, e in sim.log if e.state.value == "start"]
    assert starts == [(10.0, 2)]


def test_pause_leaves_an_outage_out_of_dwell_and_grace(rt) -> None:
    """LoiteringPipeline.pause (camera outage): the visit goes on with the same
    event, its dwell is observed time, and the update clock pauses too."""
    pipe = LoiteringPipeline(LoiteringRuleConfig(**BASE), ZONE, COCO_CLASSES, "UTC")
    sim = rt.Sim([pipe])
    for t in rt.ticks(0.0, 12.0):
        sim.step(t, [p(1, IN)])
    pipe.pause(20.0)  # no frames from 12 to 32 s
    for t in rt.ticks(32.0, 36.0):
        sim.step(t, [p(1, IN)])
    for t in rt.ticks(36.0, 42.0):
        sim.step(t, [])
    got = [(t, e.state.value, e.payload.dwell_s) for t, e in sim.log]
    assert [s for _, s, _ in got] == ["start", "end"]
    assert len({e.event_id for _, e in sim.log}) == 1
    assert got[0][:2] == (10.0, "start")
    # 0-11.5 s, one frame interval, 32-35.5 s: 15.5 s of dwell, not 35.5 s.
    assert got[-1][2] == pytest.approx(15.5)
    pipe.pause(0.0)
    pipe.pause(float("nan"))  # no-ops


def test_pause_keeps_a_left_place_for_the_newcomer(rt) -> None:
    """An outage right after a neighbour took a standing person's id: the jump's
    time is paused like every other clock, so the person's new id after the
    outage still takes their visit (the box-taken-by-a-neighbour table above)."""
    pipe = LoiteringPipeline(LoiteringRuleConfig(**BASE), ZONE, COCO_CLASSES, "UTC")
    sim = rt.Sim([pipe])
    for t in rt.ticks(0.0, 12.0):
        sim.step(t, [p(1, (40, 50)), p(2, (50, 50))])
    sim.step(12.0, [p(1, (50, 50))])  # id 1 jumps onto the neighbour
    pipe.pause(30.0)  # no frames from 12.5 to 42.5 s
    for t in rt.ticks(43.0, 45.0):
        sim.step(t, [p(1, (50, 50)), p(3, (40, 50))])
    got = [(t, e.state.value, e.payload.tracker_id) for t, e in sim.log]
    assert got == [
        (10.0, "start", 1),
        (10.0, "start", 2),
        (43.0, "update", 3),  # the person's event, now on their new id
        (43.0, "update", 1),  # the neighbour's, on the id that took their box
    ]
    assert sim.log[2][1].payload.dwell_s == pytest.approx(13.0)


# A night window with a long grace (detections flicker in poor light). TS0 is
# 2026-05-28 20:26:40 UTC; the window 20:00-06:00 UTC covers the whole timeline.
NIGHT_GRACE = ScheduleConfig(name="night", start="20:00", end="06:00", grace_s=10)
OCCLUDED_6S = [(0, 6, [p(1, IN)]), (6, 12, []), (12, 20, [p(1, IN)]), (20, 35, [])]
GRACE_CASES = [
    (
        "by night a 6 s occlusion is within the window's 10 s grace: one visit",
        0.0,
        [(12.0, "start", 1, 12.0), (30.0, "end", 1, 19.5)],
    ),
    (
        "by day the rule's 3 s grace ends the visit; the return is a new one",
        12 * 3600.0,  # 08:26 UTC, outside the window
        [],
    ),
]


@pytest.mark.parametrize(
    ("shift", "expected"), [c[1:] for c in GRACE_CASES], ids=[c[0] for c in GRACE_CASES]
)
def test_schedule_grace(rt, shift, expected) -> None:
    """A schedule's ``grace_s`` is the grace in force (session 6; before, windows
    could change only the threshold and severity)."""
    rule = LoiteringRuleConfig(**{**BASE, "schedules": (NIGHT_GRACE,)})
    pipe = LoiteringPipeline(rule, ZONE, COCO_CLASSES, "UTC")
    sim = rt.Sim([pipe], ts0=rt.TS0 + shift)
    log = sim.run(timeline(OCCLUDED_6S))
    got = [(t, e.state.value, e.payload.tracker_id, e.payload.dwell_s) for t, e in log]
    assert got == expected
