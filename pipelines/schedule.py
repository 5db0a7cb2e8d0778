"""Time-of-day/weekday schedules evaluated in the camera's time zone.

The service evaluates schedules itself from the frame's wall-clock timestamp (never
the system clock). A window ``start``-``end`` with ``start > end`` runs across
midnight and belongs to the day it *starts* on: ``fri 18:00-06:00`` covers Friday
evening and Saturday morning. Matching is done on local wall time, converted from
UTC with :mod:`zoneinfo`, so DST changes move the window with local time: on a
spring-forward night the skipped hour simply never occurs, on a fall-back night the
repeated hour matches twice (both are the same wall time).
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass

from config.rules import ScheduleConfig, Weekday
from monitor.events import Severity

__all__ = [
    "ActiveRule",
    "Scheduler",
    "local_day_start",
    "next_day_start",
    "utc_datetime",
]

log = logging.getLogger(__name__)

_WEEKDAYS: tuple[Weekday, ...] = (
    Weekday.MON,
    Weekday.TUE,
    Weekday.WED,
    Weekday.THU,
    Weekday.FRI,
    Weekday.SAT,
    Weekday.SUN,
)


def utc_datetime(ts: float) -> dt.datetime:
    """Epoch seconds → aware UTC datetime."""
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def local_day_start(ts: float, reset: dt.time, tz: dt.tzinfo) -> dt.datetime:
    """The latest local ``reset`` time at or before ``ts``, as a UTC datetime.

    Args:
        ts: Epoch seconds.
        reset: Local wall-clock reset time.
        tz: The camera's time zone.
    """
    local = dt.datetime.fromtimestamp(ts, tz)
    candidate = dt.datetime.combine(local.date(), reset, tzinfo=tz)
    if candidate > local:
        candidate = dt.datetime.combine(
            local.date() - dt.timedelta(days=1), reset, tzinfo=tz
        )
    return candidate.astimezone(dt.UTC)


def next_day_start(
    day_start: dt.datetime, reset: dt.time, tz: dt.tzinfo
) -> dt.datetime:
    """The local ``reset`` time on the day after ``day_start``, as a UTC datetime.

    Args:
        day_start: A day's start as :func:`local_day_start` gives it.
        reset: Local wall-clock reset time.
        tz: The camera's time zone.
    """
    local = day_start.astimezone(tz)
    nxt = dt.datetime.combine(local.date() + dt.timedelta(days=1), reset, tzinfo=tz)
    return nxt.astimezone(dt.UTC)


def window_contains(sched: ScheduleConfig, local: dt.datetime) -> bool:
    """Whether local wall time ``local`` falls in ``sched``'s window."""
    t = local.time().replace(tzinfo=None)
    today = _WEEKDAYS[local.weekday()]
    yesterday = _WEEKDAYS[(local.weekday() - 1) % 7]
    days = set(sched.days)
    if sched.start < sched.end:
        return today in days and sched.start <= t < sched.end
    # Across midnight: the evening part belongs to today, the morning part to the
    # window that started yesterday.
    return (today in days and t >= sched.start) or (yesterday in days and t < sched.end)


@dataclass(frozen=True, slots=True)
class ActiveRule:
    """Thresholds in force at one instant.

    Attributes:
        threshold_s: Dwell/duration threshold in seconds.
        severity: Severity of events raised now.
        enabled: False when a schedule switches the rule off.
        schedule: Name of the schedule in force, or None for the rule's defaults.
        min_count: Group size threshold (crowding rules; None for others).
        grace_s: Grace in force, seconds (None when the rule gave none).
    """

    threshold_s: float
    severity: Severity
    enabled: bool
    schedule: str | None
    min_count: int | None = None
    grace_s: float | None = None


class Scheduler:
    """Picks the first schedule whose window contains a timestamp.

    Args:
        schedules: Windows in priority order (first match wins).
        timezone: IANA name of the camera's time zone.
        threshold_s: The rule's own threshold (used outside every window, or when a
            window does not override it).
        severity: The rule's own severity.
        min_count: The rule's own group size (crowding rules only).
        grace_s: The rule's own grace (loitering, crowding).
    """

    def __init__(
        self,
        schedules: Sequence[ScheduleConfig],
        timezone: str,
        threshold_s: float,
        severity: Severity,
        min_count: int | None = None,
        grace_s: float | None = None,
    ) -> None:
        try:
            self.tz: dt.tzinfo = zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {timezone!r}") from exc
        self.schedules = tuple(schedules)
        self.default = ActiveRule(threshold_s, severity, True, None, min_count, grace_s)
        self._cache_key: int | None = None
        self._cache = self.default
        # Whole-minute windows allow one evaluation per minute.
        self._cacheable = all(
            t.second == 0 and t.microsecond == 0
            for s in self.schedules
            for t in (s.start, s.end)
        )

    def at(self, ts: float) -> ActiveRule:
        """Thresholds in force at epoch seconds ``ts``."""
        if not self.schedules:
            return self.default
        key = int(ts // 60)
        if self._cacheable and key == self._cache_key:
            return self._cache
        local = dt.datetime.fromtimestamp(ts, self.tz)
        active = self.default
        for s in self.schedules:
            if window_contains(s, local):
                active = ActiveRule(
                    threshold_s=(
                        s.min_dwell_s
                        if s.min_dwell_s is not None
                        else self.default.threshold_s
                    ),
                    severity=s.severity or self.default.severity,
                    enabled=s.enabled,
                    schedule=s.name,
                    min_count=(
                        s.min_count
                        if s.min_count is not None
                        else self.default.min_count
                    ),
                    grace_s=(
                        s.grace_s if s.grace_s is not None else self.default.grace_s
                    ),
                )
                break
        self._cache_key, self._cache = key, active
        return active
