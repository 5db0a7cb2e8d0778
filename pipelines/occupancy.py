"""Lot occupancy from entrance lines: ``in − out``, never negative, reset daily.

The rule listens to the crossings its ``vehicle_flow`` rules counted on the same
frame (the factory places occupancy pipelines after the flow pipelines they read).
Each crossing of a class in ``classes`` moves the occupancy by ±1; a departure at
zero is recorded in ``exited`` but leaves occupancy at 0 (a car that entered before
the reset, or a missed entry). Ins of a frame are applied before its outs.

Events: one ``occupancy`` event per (rule, day). A *day* starts at the latest local
``reset_time`` (camera time zone, from ``frame.ts``). ``start`` on the day's first
change, ``update`` on every further change (one per frame at most), ``end`` on the
first frame of the next day, carrying the final numbers; the day then starts at 0.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
import zoneinfo
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from config.rules import OccupancyRuleConfig
from monitor.events import Event, EventKind, EventState, OccupancyPayload, Severity
from monitor.types import Detections, Frame
from pipelines.schedule import local_day_start, utc_datetime
from pipelines.vehicle_flow import VehicleFlowPipeline

__all__ = ["OccupancyPipeline"]

log = logging.getLogger(__name__)


class OccupancyPipeline:
    """Occupancy of a lot fed by vehicle-flow pipelines (see module docstring).

    Args:
        rule: The rule's configuration.
        flows: The vehicle-flow pipelines named by ``rule.lines`` (their "in" is
            into the lot).
        timezone: IANA time zone of the camera (daily reset).
    """

    def __init__(
        self,
        rule: OccupancyRuleConfig,
        flows: Sequence[VehicleFlowPipeline],
        timezone: str = "UTC",
    ) -> None:
        self.rule = rule
        self.flows = tuple(flows)
        if not self.flows:
            raise ValueError(f"occupancy rule {rule.id!r} has no flow pipelines")
        try:
            self.tz: dt.tzinfo = zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {timezone!r}") from exc
        self.classes = frozenset(rule.classes)
        self.reset()

    def reset(self) -> None:
        """Forget the day (occupancy back to 0)."""
        self.occupancy = 0
        self.entered = 0
        self.exited = 0
        self.day_start: dt.datetime | None = None
        self.event_id: uuid.UUID | None = None
        self.revision = -1
        self._camera_id = ""

    def update(
        self,
        frame: Frame,
        detections: Detections,
        removed_ids: npt.NDArray[np.int64],
    ) -> list[Event]:
        """Apply this frame's crossings; return occupancy events.

        Args:
            frame: The frame (``ts`` decides the day).
            detections: Unused (crossings come from the flow pipelines).
            removed_ids: Unused.
        """
        ts = float(frame.ts)
        self._camera_id = frame.camera_id
        events: list[Event] = []
        day = local_day_start(ts, self.rule.reset_time, self.tz)
        if self.day_start is not None and day != self.day_start:
            if self.event_id is not None:
                events.append(self._message(ts, EventState.END, ended_at=day))
            self.occupancy = self.entered = self.exited = 0
            self.event_id = None
        self.day_start = day

        n_in = n_out = 0
        for flow in self.flows:
            if flow.last_mono != frame.mono:
                log.warning(
                    "occupancy %s: flow %s has not seen this frame; is it ordered "
                    "before the occupancy rule?",
                    self.rule.id,
                    flow.rule.id,
                )
                continue
            for c in flow.crossings:
                if c.class_name in self.classes:
                    if c.direction == "in":
                        n_in += 1
                    else:
                        n_out += 1
        if n_in == 0 and n_out == 0:
            return events
        before = self.occupancy
        self.entered += n_in
        self.exited += n_out
        self.occupancy = max(0, before + n_in - n_out)
        if self.event_id is None:
            self.event_id = uuid.uuid4()
            self.revision = -1
            events.append(self._message(ts, EventState.START))
        else:
            events.append(self._message(ts, EventState.UPDATE))
        return events

    def _message(
        self, ts: float, state: EventState, ended_at: dt.datetime | None = None
    ) -> Event:
        assert self.event_id is not None and self.day_start is not None
        self.revision += 1
        return Event(
            event_id=self.event_id,
            revision=self.revision,
            camera_id=self._camera_id,
            kind=EventKind.OCCUPANCY,
            state=state,
            severity=Severity.LOW,
            ts=utc_datetime(ts),
            started_at=self.day_start,
            ended_at=ended_at,
            payload=OccupancyPayload(
                rule_id=self.rule.id,
                occupancy=self.occupancy,
                day_start=self.day_start,
                entered=self.entered,
                exited=self.exited,
            ),
        )
