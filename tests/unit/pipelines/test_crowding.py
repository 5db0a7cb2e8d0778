"""Frame-by-frame tables for the crowding rule (pipelines/crowding.py).

Zone = square 20..80 px; min_count 3, min_duration 5 s, grace 2 s; frames every
0.5 s. Rows give the number of people in the zone per time segment.
"""

from __future__ import annotations

import pytest

from config.base import COCO_CLASSES
from config.rules import CrowdingRuleConfig, ScheduleConfig
from monitor.events import decode_event, encode_event
from pipelines.crowding import CrowdingPipeline
from tests.unit.pipelines.conftest import ZONE

RULE = CrowdingRuleConfig(id="c", zone="z", min_count=3, min_duration_s=5, grace_s=2)
DT = 0.5
AT_2AM = 1_780_020_000.0  # 2026-05-29 02:00 UTC
AT_NOON = 1_780_056_000.0  # 2026-05-29 12:00 UTC


def people(n_in, n_out=0, cls=0):
    inside = [(i + 1, 30 + 5 * i, 50, cls) for i in range(n_in)]
    outside = [(100 + i, 5, 10 + 5 * i, cls) for i in range(n_out)]
    return inside + outside


def run(rt, rule, segments, ts0=None):
    pipe = CrowdingPipeline(rule, ZONE, COCO_CLASSES, "UTC")
    sim = rt.Sim([pipe], ts0=ts0 or rt.TS0)
    for t0, t1, objs in segments:
        for i in range(int(round((t1 - t0) / DT))):
            sim.step(t0 + i * DT, objs)
    return sim.log


CASES = [
    (
        "group of 3 for 5 s raises one episode",
        [(0, 10, people(3)), (10, 15, people(1))],
        [(5, "start", 3, 3), (12, "end", 1, 3)],
    ),
    ("2 people never crowd", [(0, 20, people(2, 5))], []),
    ("group shorter than the duration", [(0, 4, people(4)), (4, 10, [])], []),
    (
        "a dip shorter than grace keeps the episode (one event, not one per frame)",
        [(0, 8, people(3)), (8, 9.5, people(2)), (9.5, 14, people(3)), (14, 20, [])],
        [(5, "start", 3, 3), (16, "end", 0, 3)],
    ),
    (
        "a dip longer than grace restarts the wait",
        [(0, 4, people(3)), (4, 7, people(1)), (7, 13, people(3)), (13, 17, [])],
        [(12, "start", 3, 3), (15, "end", 0, 3)],
    ),
    (
        "growth of the group sends an update",
        [(0, 6, people(3)), (6, 8, people(5)), (8, 12, [])],
        [(5, "start", 3, 3), (6, "update", 5, 5), (10, "end", 0, 5)],
    ),
    ("people outside the zone do not count", [(0, 20, people(0, 6))], []),
    ("empty frames", [(0, 20, [])], []),
    ("other classes do not count", [(0, 20, people(5, cls=2))], []),
]


@pytest.mark.parametrize(
    ("segments", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_crowding_table(rt, segments, expected) -> None:
    log = run(rt, RULE, segments)
    got = [(t, e.state.value, e.payload.count, e.payload.max_count) for t, e in log]
    assert got == expected
    assert len({e.event_id for _, e in log}) <= 1
    assert [e.revision for _, e in log] == list(range(len(log)))
    for _, e in log:
        assert decode_event(encode_event(e)) == e


@pytest.mark.parametrize("update_s", [30.0, 12.0])
def test_periodic_update_and_duration(rt, update_s) -> None:
    """Updates every ``update_s`` (a config field since session 5; was a constant)."""
    rule = RULE.model_copy(update={"update_s": update_s})
    log = run(rt, rule, [(0, 36, people(3)), (40, 45, [])])
    states = [(t, e.state.value) for t, e in log]
    ups = [5 + k * update_s for k in range(1, 10) if 5 + k * update_s < 36]
    assert states == [(5, "start"), *((t, "update") for t in ups), (40, "end")]
    assert log[1][1].payload.duration_s == pytest.approx(5 + update_s)
    end = log[-1][1]
    assert end.payload.duration_s == pytest.approx(35.5)
    assert end.ended_at.timestamp() == pytest.approx(rt.TS0 + 35.5)
    assert end.payload.tracker_ids == (1, 2, 3)


def test_schedule_threshold_and_severity(rt) -> None:
    rule = CrowdingRuleConfig(
        id="c",
        zone="z",
        min_count=3,
        min_duration_s=60,
        schedules=(
            ScheduleConfig(
                name="night", start="22:00", end="06:00", min_dwell_s=2, severity="high"
            ),
        ),
    )
    log = run(rt, rule, [(0, 5, people(3))], ts0=AT_2AM)
    assert [(t, e.severity.value, e.payload.schedule) for t, e in log] == [
        (2, "high", "night")
    ]
    assert run(rt, rule, [(0, 5, people(3))], ts0=AT_NOON) == []


NIGHT_RULE = CrowdingRuleConfig(
    id="c",
    zone="z",
    min_count=5,
    min_duration_s=5,
    grace_s=2,
    schedules=(
        ScheduleConfig(
            name="night", start="22:00", end="06:00", min_count=2, severity="high"
        ),
    ),
)
BEFORE_22 = 1_780_005_590.0  # 2026-05-28 21:59:50 UTC: the window opens at t = 10
BEFORE_06 = 1_780_034_380.0  # 2026-05-29 05:59:40 UTC: the window closes at t = 20

SCHEDULE_CASES = [
    (
        "after hours two people are a group",
        AT_2AM,
        [(0, 10, people(2)), (10, 14, [])],
        [(5, "start", 2, 2, "high", "night"), (12, "end", 0, 2, "high", "night")],
    ),
    ("by day two people are not", AT_NOON, [(0, 20, people(2, 3))], []),
    (
        "by day the rule's own count applies",
        AT_NOON,
        [(0, 10, people(5)), (10, 14, [])],
        [(5, "start", 5, 5, "medium", None), (12, "end", 0, 5, "medium", None)],
    ),
    (
        "a group waiting when the window opens is pending from the opening",
        BEFORE_22,
        [(0, 30, people(3)), (30, 34, [])],
        [(15, "start", 3, 3, "high", "night"), (32, "end", 0, 3, "high", "night")],
    ),
    (
        "an episode ends when the window closing raises the count above the group",
        BEFORE_06,
        [(0, 40, people(3))],
        [(5, "start", 3, 3, "high", "night"), (22, "end", 3, 3, "high", "night")],
    ),
]


@pytest.mark.parametrize(
    ("ts0", "segments", "expected"),
    [c[1:] for c in SCHEDULE_CASES],
    ids=[c[0] for c in SCHEDULE_CASES],
)
def test_schedule_group_size(rt, ts0, segments, expected) -> None:
    """A schedule's ``min_count`` is the group size in force on each frame
    (session 6; before, schedules could change only the duration and severity)."""
    log = run(rt, NIGHT_RULE, segments, ts0=ts0)
    got = [
        (t, e.state.value, e.payload.count, e.payload.max_count, e.severity.value,
         e.payload.schedule)
        for t, e in log
    ]  # fmt: skip
    assert got == expected
    assert len({e.event_id for _, e in log}) <= 1
    # Every message says which group size the episode was raised at.
    sizes = {e.payload.min_count for _, e in log}
    assert sizes <= ({2} if expected and expected[0][5] == "night" else {5})


def test_schedule_window_closing_sets_the_end_time(rt) -> None:
    """The episode's end is the last frame the group met the size in force."""
    log = run(rt, NIGHT_RULE, [(0, 40, people(3))], ts0=BEFORE_06)
    end = log[-1][1]
    assert end.ended_at.timestamp() == pytest.approx(BEFORE_06 + 19.5)
    assert end.payload.duration_s == pytest.approx(19.5)


def test_pause_leaves_an_outage_out_of_the_episode(rt) -> None:
    """CrowdingPipeline.pause (camera outage, session 4): a group still there after
    a 10 s outage is the same episode; its duration is observed time."""
    pipe = CrowdingPipeline(RULE, ZONE, COCO_CLASSES, "UTC")
    sim = rt.Sim([pipe])
    for t in rt.ticks(0.0, 8.0):
        sim.step(t, people(3))
    pipe.pause(10.0)  # no frames from 8 to 18 s
    for t in rt.ticks(18.0, 22.0):
        sim.step(t, people(3))
    for t in rt.ticks(22.0, 26.0):
        sim.step(t, [])
    got = [(t, e.state.value) for t, e in sim.log]
    assert got == [(5.0, "start"), (24.0, "end")]
    assert len({e.event_id for _, e in sim.log}) == 1
    # 0-7.5 s, one frame interval, 18-21.5 s: 11.5 s, not 21.5 s.
    assert sim.log[-1][1].payload.duration_s == pytest.approx(11.5)


RESTART_CASES = [
    # name, worker 1, pause before worker 2, worker 2, expected worker-2 events
    # (t, state, count, max_count, duration_s), continues worker 1's event
    (
        "group still there: same event, duration = time watched",
        [(0, 8, people(3))],
        2.5,  # first frame at 10.5 s: the 3 s gap less one interval is paused out
        [(10.5, 13, people(3)), (13, 18, [])],
        # watched 0-7.5 s, one interval, 10.5-12.5 s: 10 s
        [(15.0, "end", 0, 3, 10.0)],
        True,
    ),
    (
        "group gone: the restored event ends after grace",
        [(0, 8, people(3))],
        2.5,
        [(10.5, 15, [])],
        [(12.5, "end", 0, 3, 7.5)],
        True,
    ),
    (
        "restart longer than the bridge: ends at once, a new episode follows",
        [(0, 8, people(3))],
        0.0,
        [(60, 70, people(4))],
        [(60.0, "end", 3, 3, 7.5), (65.0, "start", 4, 4, 5.0)],
        True,
    ),
    (
        "wall clock set back an hour: the episode ends after grace, not in an hour",
        [(0, 8, people(3))],
        0.0,
        [(-3600, -3590, [])],
        [(-3598.0, "end", 0, 3, 7.5)],
        True,
    ),
    (
        "a pending group keeps its wait: starts at 5 s of time watched",
        [(0, 3, people(3))],
        1.5,
        [(4.5, 8, people(3)), (8, 12, [])],
        [(6.5, "start", 3, 3, 5.0), (10.0, "end", 0, 3, 6.0)],
        False,
    ),
]


@pytest.mark.parametrize(
    ("first", "pause", "second", "expected", "continues"),
    [c[1:] for c in RESTART_CASES],
    ids=[c[0] for c in RESTART_CASES],
)
def test_episode_survives_a_worker_restart(
    rt, first, pause, second, expected, continues
) -> None:
    """Crowding across a worker restart (session 5): before, the next worker
    ended the crowd's event and raised a new one after another min_duration_s."""
    import json

    w1 = CrowdingPipeline(RULE, ZONE, COCO_CLASSES, "UTC")
    sim1 = rt.Sim([w1])
    for t0, t1, objs in first:
        for i in range(int(round((t1 - t0) / DT))):
            sim1.step(t0 + i * DT, objs)
    saved = json.loads(json.dumps(w1.snapshot()))
    w2 = CrowdingPipeline(RULE, ZONE, COCO_CLASSES, "UTC")
    assert w2.restore(saved)
    assert w2.snapshot() == saved  # a crash before the first frame loses nothing
    first_ids = {e.event_id for _, e in sim1.log}
    assert w2.restored_events() == {str(i) for i in first_ids}
    w2.pause(pause)
    sim2 = rt.Sim([w2], mono0=80_000.0)
    for t0, t1, objs in second:
        for i in range(int(round((t1 - t0) / DT))):
            sim2.step(t0 + i * DT, objs)
    got = [
        (t, e.state.value, e.payload.count, e.payload.max_count, e.payload.duration_s)
        for t, e in sim2.log
    ]
    assert [g[:4] for g in got] == [e[:4] for e in expected]
    assert [g[4] for g in got] == pytest.approx([e[4] for e in expected])
    assert (sim2.log[0][1].event_id in first_ids) is continues
    for _, e in sim2.log:
        if e.event_id in first_ids:
            assert e.revision > max(x.revision for _, x in sim1.log)
            assert e.started_at == sim1.log[0][1].started_at
            assert e.payload.min_count == RULE.min_count


@pytest.mark.parametrize(
    "state",
    ["junk", {"rule_id": "other", "ts": 1, "since_ts": 0, "last_above_ts": 1,
              "max_count": 3, "last_count": 3},
     {"rule_id": "c", "ts": float("inf"), "since_ts": 0, "last_above_ts": 1,
      "max_count": 3, "last_count": 3}],
)  # fmt: skip
def test_bad_saved_episode_is_refused(rt, caplog, state) -> None:
    import logging

    pipe = CrowdingPipeline(RULE, ZONE, COCO_CLASSES, "UTC")
    with caplog.at_level(logging.WARNING, logger="pipelines.crowding"):
        assert not pipe.restore(state)
    assert "crowding c: ignoring saved state" in caplog.text
    assert pipe.snapshot() is None and pipe.restored_events() == set()


def test_schedule_grace_bridges_a_longer_dip(rt) -> None:
    """A window's ``grace_s`` is the grace in force: at night a 4 s dip keeps the
    episode (grace 5 s), by day (the rule's 2 s) it ends it (session 6)."""
    rule = RULE.model_copy(
        update={
            "schedules": (
                ScheduleConfig(name="night", start="22:00", end="06:00", grace_s=5),
            )
        }
    )
    dip = [(0, 8, people(3)), (8, 12, people(1)), (12, 20, people(3)), (20, 30, [])]
    night = [(t, e.state.value) for t, e in run(rt, rule, dip, ts0=AT_2AM)]
    assert night == [(5, "start"), (25, "end")]
    day = [(t, e.state.value) for t, e in run(rt, rule, dip, ts0=AT_NOON)]
    assert day == [(5, "start"), (10, "end"), (17, "start"), (22, "end")]


def test_duration_is_first_to_last_frame_at_the_count(rt) -> None:
    """Regression (session 6): an update sent during a dip counted the dip, so the
    end (backdated to the last frame at the count) reported less than it."""
    rule = RULE.model_copy(update={"update_s": 1.0})
    log = run(rt, rule, [(0, 8, people(3)), (8, 9.5, people(1)), (9.5, 14, [])])
    spans = [(t, e.state.value, e.payload.duration_s) for t, e in log]
    assert spans[-1] == (10.0, "end", 7.5)
    during_dip = [d for t, s, d in spans if s == "update" and 8 <= t < 9.5]
    assert during_dip and all(d == 7.5 for d in during_dip)
    durations = [d for *_, d in spans]
    assert durations == sorted(durations)
