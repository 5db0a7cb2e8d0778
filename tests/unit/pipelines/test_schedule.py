"""Schedules in the camera's time zone: windows across midnight and DST changes."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from config.base import COCO_CLASSES
from config.rules import LoiteringRuleConfig, ScheduleConfig
from monitor.events import Severity
from pipelines.loitering import LoiteringPipeline
from pipelines.schedule import Scheduler, local_day_start
from tests.unit.pipelines.conftest import ZONE

NY = "America/New_York"
UTC = dt.UTC


def utc(*a: int) -> float:
    return dt.datetime(*a, tzinfo=UTC).timestamp()


def sched(name: str, start: str, end: str, days=None, **kw) -> ScheduleConfig:
    extra = {"days": days} if days else {}
    return ScheduleConfig(name=name, start=start, end=end, **extra, **kw)


NIGHT = sched("night", "22:00", "06:00")
FRI_NIGHT = sched("fri-night", "18:00", "06:00", days=["fri"])
SUN_LATE = sched("sun-late", "22:00", "02:00", days=["sun"])
EARLY = sched("early", "01:30", "02:30")
REPEAT = sched("repeat", "01:00", "01:30")

# (schedule, UTC instant, expected active schedule name or None, why)
CASES = [
    (FRI_NIGHT, utc(2026, 5, 29, 23, 0), "fri-night", "Fri 19:00 EDT"),
    (FRI_NIGHT, utc(2026, 5, 30, 9, 59), "fri-night", "Sat 05:59 EDT, tail"),
    (FRI_NIGHT, utc(2026, 5, 30, 10, 0), None, "Sat 06:00 EDT, end exclusive"),
    (FRI_NIGHT, utc(2026, 5, 30, 23, 0), None, "Sat 19:00 EDT, wrong start day"),
    (FRI_NIGHT, utc(2026, 5, 29, 21, 59), None, "Fri 17:59 EDT"),
    (SUN_LATE, utc(2026, 6, 1, 5, 0), "sun-late", "Mon 01:00 belongs to Sunday"),
    (SUN_LATE, utc(2026, 5, 31, 5, 0), None, "Sun 01:00 belongs to Saturday"),
    # Spring forward 2026-03-08 02:00 EST -> 03:00 EDT.
    (NIGHT, utc(2026, 3, 8, 9, 30), "night", "05:30 EDT"),
    (NIGHT, utc(2026, 3, 8, 10, 45), None, "06:45 EDT (05:45 with a stale offset)"),
    (NIGHT, utc(2026, 3, 8, 2, 59), None, "21:59 EST on Mar 7"),
    (NIGHT, utc(2026, 3, 8, 3, 0), "night", "22:00 EST on Mar 7"),
    (EARLY, utc(2026, 3, 8, 6, 45), "early", "01:45 EST"),
    (EARLY, utc(2026, 3, 8, 7, 0), None, "03:00 EDT: 02:00-02:30 never happens"),
    # Fall back 2026-11-01 02:00 EDT -> 01:00 EST: the window matches twice.
    (REPEAT, utc(2026, 11, 1, 5, 15), "repeat", "01:15 EDT"),
    (REPEAT, utc(2026, 11, 1, 6, 15), "repeat", "01:15 EST (repeated hour)"),
    (REPEAT, utc(2026, 11, 1, 6, 45), None, "01:45 EST"),
    (NIGHT, utc(2026, 11, 1, 10, 30), "night", "05:30 EST"),
    (NIGHT, utc(2026, 11, 1, 11, 30), None, "06:30 EST (05:30 with a stale offset)"),
]


@pytest.mark.parametrize(
    ("schedule", "ts", "expected"), [c[:3] for c in CASES], ids=[c[3] for c in CASES]
)
def test_schedule_window(schedule, ts, expected) -> None:
    s = Scheduler([schedule], NY, 60.0, Severity.MEDIUM)
    assert s.at(ts).schedule == expected


def test_first_matching_schedule_wins_and_overrides() -> None:
    s = Scheduler(
        [
            sched("off", "12:00", "13:00", enabled=False),
            sched("night", "18:00", "06:00", min_dwell_s=10, severity="high"),
            sched("all", "00:00", "23:59", severity="low"),
        ],
        NY,
        60.0,
        Severity.MEDIUM,
    )
    lunch = s.at(utc(2026, 6, 1, 16, 30))
    assert (lunch.schedule, lunch.enabled) == ("off", False)
    night = s.at(utc(2026, 6, 2, 1, 0))
    assert (night.threshold_s, night.severity) == (10, Severity.HIGH)
    day = s.at(utc(2026, 6, 1, 14, 0))
    assert (day.schedule, day.threshold_s, day.severity) == ("all", 60.0, "low")
    none = Scheduler([], NY, 60.0, Severity.MEDIUM).at(utc(2026, 6, 1, 14, 0))
    assert (none.schedule, none.threshold_s, none.enabled) == (None, 60.0, True)


def test_group_size_overridden_or_inherited() -> None:
    """A window's ``min_count`` replaces the rule's; a window without one, or no
    window, keeps the rule's (crowding rules; None for rules without a count)."""
    windows = [
        sched("night", "18:00", "06:00", min_count=2),
        sched("all", "00:00", "23:59", severity="low"),
    ]
    s = Scheduler(windows, NY, 60.0, Severity.MEDIUM, min_count=8)
    assert s.at(utc(2026, 6, 2, 1, 0)).min_count == 2  # 21:00 New York
    assert s.at(utc(2026, 6, 1, 14, 0)).min_count == 8  # 10:00: "all", no count
    assert Scheduler([], NY, 60.0, Severity.MEDIUM, 8).at(0.0).min_count == 8
    no_count = Scheduler(windows, NY, 60.0, Severity.MEDIUM)
    assert no_count.at(utc(2026, 6, 1, 14, 0)).min_count is None


def test_grace_overridden_or_inherited() -> None:
    windows = [
        sched("night", "18:00", "06:00", grace_s=10),
        sched("all", "00:00", "23:59"),
    ]
    s = Scheduler(windows, NY, 60.0, Severity.MEDIUM, grace_s=3.0)
    assert s.at(utc(2026, 6, 2, 1, 0)).grace_s == 10  # 21:00 New York
    assert s.at(utc(2026, 6, 1, 14, 0)).grace_s == 3.0  # "all": the rule's


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (utc(2026, 3, 8, 7, 30), utc(2026, 3, 8, 7, 0)),  # 03:30 EDT -> 03:00 EDT
        (utc(2026, 3, 8, 6, 59), utc(2026, 3, 7, 8, 0)),  # 01:59 EST -> Mar 7 03:00 EST
        (utc(2026, 11, 1, 8, 0), utc(2026, 11, 1, 8, 0)),  # 03:00 EST exactly
        (utc(2026, 11, 1, 7, 59), utc(2026, 10, 31, 7, 0)),  # 02:59 EST -> Oct 31 EDT
    ],
)
def test_local_day_start_across_dst(ts, expected) -> None:
    got = local_day_start(ts, dt.time(3, 0), ZoneInfo(NY))
    assert got.timestamp() == expected
    assert got.tzinfo is not None


AFTER_HOURS = LoiteringRuleConfig(
    id="r",
    zone="z",
    min_dwell_s=60,
    entry_s=0.5,
    schedules=(
        sched("after-hours", "18:00", "06:00", min_dwell_s=10, severity="high"),
        sched("lunch-off", "12:00", "13:00", enabled=False),
    ),
)


@pytest.mark.parametrize(
    ("start_utc", "expected"),
    [
        (utc(2026, 6, 1, 23, 0), [(10.0, "start", "high", "after-hours", 10.0)]),
        (utc(2026, 6, 1, 14, 0), []),  # 10:00 EDT: 60 s rule, 15 s stay
        (utc(2026, 6, 1, 16, 10), []),  # lunch: rule off
        # Crossing into the after-hours window at 18:00:05 EDT mid-visit.
        (utc(2026, 6, 1, 21, 59, 55), [(10.0, "start", "high", "after-hours", 10.0)]),
    ],
    ids=["after hours", "daytime", "disabled window", "window opens mid-visit"],
)
def test_loitering_uses_schedule_in_camera_timezone(rt, start_utc, expected) -> None:
    pipe = LoiteringPipeline(AFTER_HOURS, ZONE, COCO_CLASSES, NY)
    sim = rt.Sim([pipe], ts0=start_utc)
    for i in range(30):  # 15 s standing in the zone
        sim.step(i * 0.5, [(1, 50, 50)])
    got = [
        (t, e.state.value, e.severity.value, e.payload.schedule, e.payload.threshold_s)
        for t, e in sim.log
    ]
    assert got == expected
