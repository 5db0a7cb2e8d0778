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

Restarts: :meth:`OccupancyPipeline.snapshot` returns the day's numbers and event
identity as a plain dict and :meth:`OccupancyPipeline.restore` takes them back (the
worker keeps them in a small state file, ``monitor/state.py``). A restored day goes
on with the same event (next revision); a restored day that is over by the first
frame is ended with its final numbers, as it would have been without the restart.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
import zoneinfo
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from config.rules import OccupancyRuleConfig
from monitor.events import Event, EventKind, EventState, OccupancyPayload, Severity
from monitor.types import Detections, Frame
from pipelines.base import parse_saved_state
from pipelines.schedule import local_day_start, next_day_start, utc_datetime
from pipelines.vehicle_flow import VehicleFlowPipeline

__all__ = ["OccupancyPipeline", "OccupancyState", "end_of_saved_day"]

log = logging.getLogger(__name__)


class OccupancyState(BaseModel):
    """What survives a worker restart: the day's numbers and its event (version 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(1, ge=1, le=1)
    rule_id: str = Field(min_length=1, max_length=200)
    day_start: dt.datetime
    occupancy: int = Field(ge=0)
    entered: int = Field(ge=0)
    exited: int = Field(ge=0)
    event_id: uuid.UUID
    revision: int = Field(ge=0)
    camera_id: str = Field("", max_length=200)


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

    def snapshot(self) -> dict[str, object] | None:
        """The state to keep across a restart (JSON-safe), or None before the
        day's first change."""
        if self.event_id is None or self.day_start is None:
            return None
        return OccupancyState(
            rule_id=self.rule.id,
            day_start=self.day_start,
            occupancy=self.occupancy,
            entered=self.entered,
            exited=self.exited,
            event_id=self.event_id,
            revision=self.revision,
            camera_id=self._camera_id,
        ).model_dump(mode="json")

    def restore(self, state: object) -> bool:
        """Continue from a :meth:`snapshot` taken before a restart.

        Call before the first :meth:`update`. Bad or foreign state is logged and
        ignored (the day then starts at 0, as without it).

        Args:
            state: A dict as returned by :meth:`snapshot`.

        Returns:
            Whether the state was taken.
        """
        st = parse_saved_state(OccupancyState, state, "occupancy", self.rule.id, log)
        if st is None:
            return False
        if st.day_start.tzinfo is None:
            log.warning(
                "occupancy %s: ignoring saved state without time zone", st.rule_id
            )
            return False
        if st.entered - st.exited > st.occupancy or st.occupancy > st.entered:
            # occupancy = max(0, ...) of the day's crossings: it never exceeds the
            # entries, and it is at least entries - exits.
            log.warning(
                "occupancy %s: ignoring inconsistent saved state (occupancy %d, "
                "entered %d, exited %d)",
                st.rule_id,
                st.occupancy,
                st.entered,
                st.exited,
            )
            return False
        self.occupancy, self.entered, self.exited = st.occupancy, st.entered, st.exited
        self.day_start = st.day_start.astimezone(dt.UTC)
        self.event_id, self.revision = st.event_id, st.revision
        self._camera_id = st.camera_id
        log.info(
            "occupancy %s: restored %d (in %d, out %d) for the day from %s",
            st.rule_id,
            st.occupancy,
            st.entered,
            st.exited,
            self.day_start.isoformat(),
        )
        return True

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
                # The day ended at its next reset: ``day`` on consecutive frames,
                # earlier when a restart (restore) spanned more than one reset.
                nxt = next_day_start(self.day_start, self.rule.reset_time, self.tz)
                events.append(self._message(ts, EventState.END, ended_at=min(day, nxt)))
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


def end_of_saved_day(state: object, ts: float) -> Event | None:
    """The ``end`` of a saved occupancy day that no pipeline continues.

    A rule removed from the config (or its camera), or saved state the pipeline
    refused, leaves the day's event open with nothing to end it at the daily reset:
    the worker ends it with its saved numbers (``monitor/state.py``).

    Args:
        state: A saved :meth:`OccupancyPipeline.snapshot`.
        ts: When it ended: the last frame the camera processed (epoch seconds).

    Returns:
        The message (one revision skipped, as after every restore), or None when
        the state is not a valid occupancy day.
    """
    try:
        st = OccupancyState.model_validate(state)
    except ValidationError:
        return None
    if st.day_start.tzinfo is None:
        return None
    day_start = st.day_start.astimezone(dt.UTC)
    end = max(utc_datetime(ts), day_start)
    return Event(
        event_id=st.event_id,
        revision=st.revision + 2,
        camera_id=st.camera_id,
        kind=EventKind.OCCUPANCY,
        state=EventState.END,
        severity=Severity.LOW,
        ts=end,
        started_at=day_start,
        ended_at=end,
        payload=OccupancyPayload(
            rule_id=st.rule_id,
            occupancy=st.occupancy,
            day_start=day_start,
            entered=st.entered,
            exited=st.exited,
        ),
    )
