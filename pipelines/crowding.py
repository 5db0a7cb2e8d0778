"""Crowding (group loitering): N or more objects in a zone for T seconds.

One *episode* per group, not one event per frame:

* the episode is **pending** from the first frame with ``count >= min_count``;
  a dip below ``min_count`` lasting more than ``grace_s`` cancels it;
  ``min_count`` is the one in force on each frame: the rule's, or the schedule's
  in force then (a window boundary can thus start or end an episode);
* it **starts** (``start`` event) once it has been pending for the threshold in
  force (``min_duration_s``, or a schedule's ``min_dwell_s``);
* it sends an ``update`` every ``update_s`` seconds and whenever the peak count
  grows;
* it **ends** (``end`` event, ``ended_at`` = last frame at or above the count) once
  the count has stayed below ``min_count`` for more than ``grace_s``.

``count`` is the number of tracked objects of the rule's classes whose anchor is in
the zone on that frame; durations come from ``frame.mono``.

An episode survives a worker restart (:meth:`CrowdingPipeline.snapshot` /
:meth:`~CrowdingPipeline.restore`, epoch times in the camera's state file): the new
worker's first frames continue it (same event) when the group is still there, or end
it after ``grace_s`` when it is not. The worker pauses a short restart out of the
clocks as it does a camera outage.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from config.rules import CrowdingRuleConfig
from config.schema import ZoneConfig
from monitor.events import CrowdingPayload, Event, EventKind, EventState, Severity
from monitor.types import Detections, Frame
from monitor.zones import PolygonZone, select_tracks
from pipelines.base import parse_saved_state, restored_clock_offset
from pipelines.schedule import Scheduler, utc_datetime

__all__ = ["CrowdingPipeline"]

log = logging.getLogger(__name__)


class CrowdingState(BaseModel):
    """What survives a worker restart: the open episode (version 1; epoch seconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(1, ge=1, le=1)
    rule_id: str = Field(min_length=1, max_length=200)
    camera_id: str = Field("", max_length=200)
    ts: float = Field(allow_inf_nan=False, description="Last frame")
    since_ts: float = Field(allow_inf_nan=False, description="Episode start")
    last_above_ts: float = Field(allow_inf_nan=False)
    max_count: int = Field(ge=0, le=100_000)
    last_count: int = Field(ge=0, le=100_000)
    last_ids: tuple[int, ...] = Field((), max_length=100_000)
    event_id: uuid.UUID | None = None
    revision: int = Field(-1, ge=-1, le=1_000_000)
    started_at: float = Field(0.0, allow_inf_nan=False)
    last_msg_ts: float = Field(0.0, allow_inf_nan=False)
    severity: Severity = Severity.MEDIUM
    schedule: str | None = Field(None, max_length=200)
    min_count: int | None = Field(None, ge=1, le=100_000)
    duration_s: float = Field(0.0, ge=0, allow_inf_nan=False, description="Last sent")


class CrowdingPipeline:
    """Group-size rule over one zone (see module docstring).

    Args:
        rule: The rule's configuration.
        zone: The zone it watches.
        class_names: Detector class names, index == class id.
        timezone: IANA time zone of the camera (schedules).
    """

    def __init__(
        self,
        rule: CrowdingRuleConfig,
        zone: ZoneConfig,
        class_names: Sequence[str],
        timezone: str = "UTC",
    ) -> None:
        self.rule = rule
        self.zone_cfg = zone
        names = tuple(class_names)
        missing = [c for c in rule.classes if c not in names]
        if missing:
            raise ValueError(
                f"crowding rule {rule.id!r}: detector has no class(es) {missing}"
            )
        self.class_ids = np.array([names.index(c) for c in rule.classes], np.int64)
        self.scheduler = Scheduler(
            rule.schedules,
            timezone,
            rule.min_duration_s,
            rule.severity,
            rule.min_count,
            rule.grace_s,
        )
        self._zone: PolygonZone | None = None
        self._wh: tuple[int, int] | None = None
        self._camera_id = ""
        self.reset()

    def reset(self) -> None:
        """Forget the current episode."""
        self.since = math.nan  # mono of the first frame at/above the count
        self.last_above = math.nan  # mono of the last frame at/above the count
        self.last_above_ts = math.nan
        self.max_count = 0
        self.last_count = 0
        self.last_ids: tuple[int, ...] = ()
        self.event_id: uuid.UUID | None = None
        self.revision = -1
        self.started_at = 0.0
        self.last_msg = 0.0
        self.severity = Severity.MEDIUM
        self.schedule: str | None = None
        self.min_count: int | None = None  # in force when the episode started
        self.duration = 0.0  # last reported (never reported lower)
        self._last_mono: float | None = None
        self._last_ts: float | None = None
        # An episode restored after a restart, waiting for the first frame's clocks,
        # and the outage paused out before it.
        self._restored: CrowdingState | None = None
        self._restored_pause = 0.0

    def pause(self, seconds: float) -> None:
        """Leave ``seconds`` out of the episode's clocks (a camera outage): the
        gap neither ends a group (grace) nor counts towards its duration.

        Args:
            seconds: Length of the outage (``<= 0``: nothing happens).
        """
        seconds = float(seconds)
        if not math.isfinite(seconds) or seconds <= 0.0:
            return
        if self._restored is not None:
            self._restored_pause += seconds
        self.since += seconds
        self.last_above += seconds
        self.last_msg += seconds
        if self._last_mono is not None:
            self._last_mono += seconds

    def snapshot(self) -> dict[str, object] | None:
        """The open episode to keep across a worker restart (JSON-safe), or None."""
        if self._restored is not None:
            return self._restored.model_dump(mode="json")
        if math.isnan(self.since) or self._last_mono is None or self._last_ts is None:
            return None
        mono, ts = self._last_mono, self._last_ts

        # Full precision: times rounded to the millisecond moved an event's
        # started_at after a restart and could put its end before its start
        # (found by tests/unit/pipelines/test_rule_invariants.py).
        def epoch(t: float) -> float:
            return ts - (mono - t)

        return CrowdingState(
            rule_id=self.rule.id,
            camera_id=self._camera_id,
            ts=ts,
            since_ts=epoch(self.since),
            last_above_ts=self.last_above_ts,
            max_count=self.max_count,
            last_count=self.last_count,
            last_ids=self.last_ids,
            event_id=self.event_id,
            revision=self.revision,
            started_at=self.started_at,
            last_msg_ts=epoch(self.last_msg) if self.event_id is not None else 0.0,
            severity=Severity(self.severity),
            schedule=self.schedule,
            min_count=self.min_count,
            duration_s=self.duration,
        ).model_dump(mode="json")

    def restore(self, state: object) -> bool:
        """Continue the episode of a :meth:`snapshot` taken before a restart.

        Call before the first :meth:`update`; bad or foreign state is logged and
        ignored.

        Args:
            state: A dict as returned by :meth:`snapshot`.

        Returns:
            Whether the state was taken.
        """
        st = parse_saved_state(CrowdingState, state, "crowding", self.rule.id, log)
        if st is None:
            return False
        self.reset()
        self._restored = st
        self._camera_id = st.camera_id
        log.info(
            "crowding %s: restored an episode of %d (%s)",
            self.rule.id,
            st.max_count,
            "with an event" if st.event_id else "no event yet",
        )
        return True

    def restored_events(self) -> set[str]:
        """Id of the saved open event this pipeline continues after :meth:`restore`."""
        st = self._restored
        return {str(st.event_id)} if st is not None and st.event_id else set()

    def _take_up_restored(self, now: float, ts: float) -> None:
        """Turn a restored episode into clocks on the first frame after a restart
        (:func:`pipelines.base.restored_clock_offset`)."""
        st, pause = self._restored, self._restored_pause
        self._restored, self._restored_pause = None, 0.0
        if st is None:
            return

        offset = restored_clock_offset(now, ts, st.ts, pause)

        def mono(x: float) -> float:
            return x + offset

        self.since = mono(st.since_ts)
        self.last_above, self.last_above_ts = mono(st.last_above_ts), st.last_above_ts
        self.max_count, self.last_count = st.max_count, st.last_count
        self.last_ids = st.last_ids
        if st.event_id is not None:
            self.event_id = st.event_id
            # One revision skipped: a message sent after the last save must not
            # share its revision with the next one.
            self.revision = st.revision + 1
            self.started_at = st.started_at
            self.last_msg = mono(st.last_msg_ts)
            self.severity = st.severity
            self.schedule = st.schedule
            self.min_count = st.min_count
            self.duration = st.duration_s

    def update(
        self,
        frame: Frame,
        detections: Detections,
        removed_ids: npt.NDArray[np.int64],
    ) -> list[Event]:
        """Consume one frame; return crowding events (start/update/end).

        Args:
            frame: The frame (``mono`` for durations, ``ts`` for timestamps).
            detections: Confirmed tracks, ``tracker_id`` set (may be empty).
            removed_ids: Unused: the rule keeps no per-track state.
        """
        now, ts = float(frame.mono), float(frame.ts)
        if self._last_mono is not None and now < self._last_mono:
            log.warning("crowding %s: monotonic time went backwards", self.rule.id)
            self.reset()
        self._last_mono, self._last_ts = now, ts
        self._camera_id = frame.camera_id
        events: list[Event] = []
        # Thresholds in force on this frame: a schedule may set its own group size
        # (after hours 2, at lunch 15) and grace; an episode runs on while the count
        # meets whichever size is in force, so a window boundary can start or end one.
        active = self.scheduler.at(ts)
        need = active.min_count if active.min_count is not None else self.rule.min_count
        grace = active.grace_s if active.grace_s is not None else self.rule.grace_s
        if self._restored is not None:
            self._take_up_restored(now, ts)
            if not math.isnan(self.since) and now - self.last_above > grace:
                # Back after longer than grace (a restart not bridged): the group
                # seen now is a new episode, the restored one is over.
                if self.event_id is not None:
                    events.append(self._message(ts, EventState.END, now))
                self.since, self.event_id = math.nan, None
        wh = frame.resolution_wh
        if self._zone is None or wh != self._wh:
            self._zone = PolygonZone.from_relative(self.zone_cfg.polygon, wh)
            self._wh = wh
        try:
            tids, anchors, _, _ = select_tracks(
                detections, self.class_ids, self.rule.anchor
            )
        except ValueError as exc:
            log.error("crowding %s: ignoring bad detections: %s", self.rule.id, exc)
            tids, anchors = np.zeros(0, np.int64), np.zeros((0, 2))
        inside = self._zone.trigger(anchors)
        count = int(np.count_nonzero(inside))

        if count >= need:
            if math.isnan(self.since):
                self.since = now
                self.max_count = 0
            self.last_above, self.last_above_ts = now, ts
            self.last_count = count
            self.last_ids = tuple(int(t) for t in tids[inside])
            grew = count > self.max_count
            self.max_count = max(self.max_count, count)
        else:
            grew = False
            self.last_count = count
        if not math.isnan(self.since) and now - self.last_above > grace:
            if self.event_id is not None:
                events.append(self._message(ts, EventState.END, now))
            self.since = math.nan
            self.event_id = None
            return events
        if math.isnan(self.since):
            return events

        if self.event_id is None:
            if (
                active.enabled
                and count >= need
                and now - self.since >= active.threshold_s
            ):
                self.event_id = uuid.uuid4()
                self.revision = -1
                self.started_at = ts
                self.severity = active.severity
                self.schedule = active.schedule
                self.min_count = need
                self.duration = 0.0
                events.append(self._message(ts, EventState.START, now))
        elif grew or now - self.last_msg >= self.rule.update_s:
            events.append(self._message(ts, EventState.UPDATE, now))
        return events

    def _message(self, ts: float, state: EventState, now: float) -> Event:
        assert self.event_id is not None
        self.revision += 1
        self.last_msg = now
        ended = state is EventState.END
        # Duration = first to last frame at or above the count, in every message
        # (an update during a dip does not count the dip; the end is not shorter
        # than the last update), and never lower than already sent: a restart's
        # clock conversions can move it by a few ns across a rounding boundary.
        self.duration = max(
            round(max(0.0, self.last_above - self.since), 3), self.duration
        )
        payload = CrowdingPayload(
            rule_id=self.rule.id,
            zone_id=self.zone_cfg.id,
            count=self.last_count,
            max_count=self.max_count,
            duration_s=self.duration,
            tracker_ids=self.last_ids,
            schedule=self.schedule,
            min_count=self.min_count,
        )
        return Event(
            event_id=self.event_id,
            revision=self.revision,
            camera_id=self._camera_id,
            kind=EventKind.CROWDING,
            state=state,
            severity=self.severity,
            ts=utc_datetime(ts),
            started_at=utc_datetime(self.started_at),
            ended_at=utc_datetime(self.last_above_ts) if ended else None,
            payload=payload,
        )
