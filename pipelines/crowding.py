"""Crowding (group loitering): N or more objects in a zone for T seconds.

One *episode* per group, not one event per frame:

* the episode is **pending** from the first frame with ``count >= min_count``;
  a dip below ``min_count`` lasting more than ``grace_s`` cancels it;
* it **starts** (``start`` event) once it has been pending for the threshold in
  force (``min_duration_s``, or a schedule's ``min_dwell_s``);
* it sends an ``update`` every :data:`UPDATE_S` seconds and whenever the peak count
  grows;
* it **ends** (``end`` event, ``ended_at`` = last frame at or above the count) once
  the count has stayed below ``min_count`` for more than ``grace_s``.

``count`` is the number of tracked objects of the rule's classes whose anchor is in
the zone on that frame; durations come from ``frame.mono``.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from config.rules import CrowdingRuleConfig
from config.schema import ZoneConfig
from monitor.events import CrowdingPayload, Event, EventKind, EventState, Severity
from monitor.types import Detections, Frame
from monitor.zones import PolygonZone, select_tracks
from pipelines.schedule import Scheduler, utc_datetime

__all__ = ["UPDATE_S", "CrowdingPipeline"]

log = logging.getLogger(__name__)

UPDATE_S = 30.0
"""Seconds between periodic ``update`` messages of an open crowding episode."""


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
            rule.schedules, timezone, rule.min_duration_s, rule.severity
        )
        self._zone: PolygonZone | None = None
        self._wh: tuple[int, int] | None = None
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
        self._last_mono: float | None = None

    def pause(self, seconds: float) -> None:
        """Leave ``seconds`` out of the episode's clocks (a camera outage): the
        gap neither ends a group (grace) nor counts towards its duration.

        Args:
            seconds: Length of the outage (``<= 0``: nothing happens).
        """
        seconds = float(seconds)
        if not math.isfinite(seconds) or seconds <= 0.0:
            return
        self.since += seconds
        self.last_above += seconds
        self.last_msg += seconds
        if self._last_mono is not None:
            self._last_mono += seconds

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
        self._last_mono = now
        self._camera_id = frame.camera_id
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
        events: list[Event] = []

        if count >= self.rule.min_count:
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
        if not math.isnan(self.since) and now - self.last_above > self.rule.grace_s:
            if self.event_id is not None:
                events.append(self._message(ts, EventState.END, now))
            self.since = math.nan
            self.event_id = None
            return events
        if math.isnan(self.since):
            return events

        if self.event_id is None:
            active = self.scheduler.at(ts)
            if (
                active.enabled
                and count >= self.rule.min_count
                and now - self.since >= active.threshold_s
            ):
                self.event_id = uuid.uuid4()
                self.revision = -1
                self.started_at = ts
                self.severity = active.severity
                self.schedule = active.schedule
                events.append(self._message(ts, EventState.START, now))
        elif grew or now - self.last_msg >= UPDATE_S:
            events.append(self._message(ts, EventState.UPDATE, now))
        return events

    def _message(self, ts: float, state: EventState, now: float) -> Event:
        assert self.event_id is not None
        self.revision += 1
        self.last_msg = now
        ended = state is EventState.END
        end_mono = self.last_above if ended else now
        payload = CrowdingPayload(
            rule_id=self.rule.id,
            zone_id=self.zone_cfg.id,
            count=self.last_count,
            max_count=self.max_count,
            duration_s=round(max(0.0, end_mono - self.since), 3),
            tracker_ids=self.last_ids,
            schedule=self.schedule,
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
