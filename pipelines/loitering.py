"""Loitering: a tracked object whose anchor stays in a zone too long.

Definitions (all durations from ``frame.mono``, wall-clock seconds, never frames):

* **Presence run**: consecutive in-zone observations of one track. An out-of-zone
  observation, or no in-zone observation for more than ``grace_s``, breaks a run
  that has not yet become a visit (so edge flicker never opens a visit).
* **Visit**: opens when a presence run has lasted ``entry_s``; it starts at the
  run's first in-zone observation. It ends once the track has had no in-zone
  observation for more than ``grace_s`` (it left, is occluded, or is gone); shorter
  exits/occlusions do not end it and the time spent in them still counts.
* **Dwell** = now − visit start. A stationary object keeps counting.
* **Event**: ``start`` on the first in-zone frame with dwell ≥ the threshold in force
  (rule or schedule), ``update`` every ``update_s`` while the visit lasts, ``end`` when
  the visit ends (``ended_at`` = last in-zone observation). At most one event per
  visit; after an end the same track cannot start another for ``cooldown_s``.
* **Id switch**: a *new* track id of the same class or class group, first seen in
  the zone within ``grace_s`` of a visiting track's last in-zone observation, and
  within ``reid_distance`` × frame diagonal of its last anchor, while that track is
  not visible, takes over the visit (and its event): dwell continues instead of
  restarting.
* **Box taken by a neighbour**: in a standing group the tracker can move a
  person's id onto the neighbour beside them and give the person a new id a moment
  later. A visiting track that was standing still and whose anchor *jumps* leaves
  its place behind; a new id of its class group first seen there within
  ``grace_s`` takes the visit and its event, and the jumper starts a new visit at
  the jump, or takes over the visit of the neighbour whose id it took
  (:meth:`LoiteringPipeline._link_new`).
* **Worker restart**: :meth:`LoiteringPipeline.snapshot` keeps the open visits (and
  their events) in the camera's state file; after a restart
  :meth:`LoiteringPipeline.restore` brings them back as vanished visitors, so the
  new tracker's track for a person still standing there takes the visit over by the
  id-switch rule above: one visit, one event. The worker pauses the restart out of
  the clocks as it does a camera outage; a visit nobody takes over ends after
  ``grace_s`` with its own event's ``end``.

State is a struct of NumPy columns (one row per track); only rows that produce an
event are touched in Python.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from config.rules import LoiteringRuleConfig
from config.schema import ZoneConfig
from config.tracker import TrackerConfig
from monitor.events import Event, EventKind, EventState, LoiteringPayload, Severity
from monitor.types import ClassGroups, Detections, Frame, anchor_points
from monitor.zones import PolygonZone, lookup_rows, select_births, select_tracks
from pipelines.base import parse_saved_state, restored_clock_offset
from pipelines.schedule import Scheduler, utc_datetime

__all__ = ["LoiteringPipeline"]

log = logging.getLogger(__name__)

#: Box taken by a neighbour (module docstring): an anchor step larger than this, in
#: box sizes (x by the box width, y by its height), between two observations at
#: most ``_JUMP_STEP_S`` apart is a jump. Walking moves a person about 0.04 box
#: sizes a frame at 25/s; detector jitter on a standing person is 0.01-0.1.
_JUMP_BOX = 0.5
_JUMP_STEP_S = 1.0
#: Standing still: the anchor moved less than this many box sizes a second over the
#: last baseline of at least ``_STILL_MIN_S`` (a baseline restarts every
#: ``_STILL_BASE_S``). People walking in single file step into the place of the
#: one ahead; only a standing person's place is theirs.
_STILL_BOX_S = 0.3
_STILL_MIN_S = 0.5
_STILL_BASE_S = 1.0
#: A new id takes a jumper's visit when it is first seen within this many of its
#: box widths of the place the jumper left (and closer to it than the jumper).
_HAND_BACK_BOX = 0.5


def _box_dist(
    boxes: npt.NDArray[np.float64],
    x0: npt.NDArray[np.float64],
    y0: npt.NDArray[np.float64],
    x1: npt.NDArray[np.float64],
    y1: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """``(K,)`` distances from ``(x0, y0)`` to ``(x1, y1)`` (px) in box sizes of
    ``boxes`` ``(K, 4)``: x by each box's width, y by its height."""
    w = np.maximum(boxes[:, 2] - boxes[:, 0], 1.0)
    h = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
    return np.asarray(np.hypot((x1 - x0) / w, (y1 - y0) / h))


# Rows of tracks unseen this long past grace/cooldown are dropped even if the
# tracker never reported their removal (bounded memory).
_STALE_S = 30.0


class SavedLoiteringEvent(BaseModel):
    """An open loitering event in a :class:`LoiteringState`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: uuid.UUID
    revision: int = Field(ge=0, le=1_000_000)
    started_at: float = Field(allow_inf_nan=False, description="Epoch seconds")
    last_msg_ts: float = Field(allow_inf_nan=False, description="Epoch seconds")
    threshold_s: float = Field(ge=0, allow_inf_nan=False)
    severity: Severity
    schedule: str | None = Field(None, max_length=200)
    dwell_s: float = Field(0.0, ge=0, allow_inf_nan=False, description="Last reported")


class SavedVisit(BaseModel):
    """One open visit in a :class:`LoiteringState` (times in epoch seconds,
    positions relative to the frame size)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tracker_id: int = Field(ge=0)
    class_id: int = Field(ge=0, le=100_000)
    anchor: tuple[float, float] = Field(description="Relative x, y")
    box: tuple[float, float, float, float] = Field(description="Relative xyxy")
    visit_ts: float = Field(allow_inf_nan=False, description="Visit start")
    last_in_ts: float = Field(allow_inf_nan=False, description="Last in-zone frame")
    last_seen_ts: float = Field(allow_inf_nan=False, description="Last frame at all")
    event: SavedLoiteringEvent | None = None


class LoiteringState(BaseModel):
    """What survives a worker restart: the open visits (version 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(1, ge=1, le=1)
    rule_id: str = Field(min_length=1, max_length=200)
    camera_id: str = Field("", max_length=200)
    ts: float = Field(allow_inf_nan=False, description="Epoch s of the last frame")
    visits: tuple[SavedVisit, ...] = Field((), max_length=10_000)


@dataclass(slots=True)
class _Open:
    """An event in progress for one track."""

    event_id: uuid.UUID
    revision: int
    started_at: float  # epoch seconds
    last_msg: float  # mono
    threshold_s: float
    severity: str
    schedule: str | None
    # Handed to a new track id since the last message: the next frame sends an
    # update, so the event's tracker_id is the track that carries it now.
    handed: bool = False
    # Dwell last reported (s, as sent): never reported lower, also after a
    # restart, whose epoch <-> monotonic conversions can move it by a few ns
    # across a rounding boundary (found by test_rule_invariants).
    dwell: float = 0.0


_FLOAT_COLS = (
    "first_in",
    "last_in",
    "last_in_ts",
    "last_seen",
    "visit",
    "cooldown",
    "ax",
    "ay",
    "jump_t",
    "jx",
    "jy",
    "ref_x",
    "ref_y",
    "ref_t",
    "speed",
)
#: A visit's state, carried from row to row when a visit changes hands.
_VISIT_COLS = ("first_in", "last_in", "last_in_ts", "visit", "cooldown")
#: Columns holding monotonic times, shifted by :meth:`LoiteringPipeline.pause`.
_CLOCK_COLS = ("first_in", "last_in", "last_seen", "visit", "cooldown")


class LoiteringPipeline:
    """Dwell-time rule over one zone (see module docstring for the definitions).

    Args:
        rule: The rule's configuration.
        zone: The zone it watches.
        class_names: Detector class names, index == class id.
        timezone: IANA time zone of the camera (schedules).
        class_groups: Class names one object may be detected as in turn (the
            tracker's ``class_groups``; default: its default, car/bus/truck). An id
            switch hands a visit only to a new track of the same class or group: a
            parked car re-detected as a truck keeps its dwell, a bicycle appearing
            where a person vanished does not take the person's.
    """

    def __init__(
        self,
        rule: LoiteringRuleConfig,
        zone: ZoneConfig,
        class_names: Sequence[str],
        timezone: str = "UTC",
        class_groups: Sequence[Sequence[str]] | None = None,
    ) -> None:
        self.rule = rule
        self.zone_cfg = zone
        self.class_names = tuple(class_names)
        if class_groups is None:
            class_groups = TrackerConfig().class_groups
        self._groups = ClassGroups(self.class_names, class_groups)
        missing = [c for c in rule.classes if c not in self.class_names]
        if missing:
            raise ValueError(
                f"loitering rule {rule.id!r}: detector has no class(es) {missing}"
            )
        self.class_ids = np.array(
            [self.class_names.index(c) for c in rule.classes], dtype=np.int64
        )
        self.scheduler = Scheduler(
            rule.schedules,
            timezone,
            rule.min_dwell_s,
            rule.severity,
            None,
            rule.grace_s,
        )
        self._zone: PolygonZone | None = None
        self._wh: tuple[int, int] | None = None
        self._reid_px = 0.0
        self._last_mono: float | None = None
        self._last_ts: float | None = None
        self._camera_id = ""
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget every track, visit and open event."""
        self.ids = np.zeros(0, dtype=np.int64)
        self.cls = np.zeros(0, dtype=np.int64)
        self.box = np.zeros((0, 4), dtype=np.float64)
        self.gone = np.zeros(0, dtype=bool)
        empty: npt.NDArray[np.float64] = np.zeros(0, dtype=np.float64)
        self.first_in = empty  # mono: start of the current presence run (nan: none)
        self.last_in = empty  # mono: last in-zone observation
        self.last_in_ts = empty  # epoch seconds of that observation
        self.last_seen = empty  # mono: last observation at all
        self.visit = empty  # mono: visit start (nan: no open visit)
        self.cooldown = empty  # mono before which no new event may start
        self.ax = empty  # last anchor x, px
        self.ay = empty  # last anchor y, px
        # Box taken by a neighbour (_hand_back): time of a visiting track's last
        # jump (nan: none) and the anchor it jumped from (px); a baseline anchor
        # and its time for the speed (box sizes/s, nan: not measured yet).
        self.jump_t = empty
        self.jx = empty
        self.jy = empty
        self.ref_x = empty
        self.ref_y = empty
        self.ref_t = empty
        self.speed = empty
        self.open: dict[int, _Open] = {}
        self._last_mono = None
        self._last_ts = None
        # Visits restored after a restart, waiting for the first frame's clocks
        # (restore()), the outage paused out before it, and the tracker id each
        # restored row reports until a new track takes it over (rows use negative
        # placeholder ids so no new track can collide with them).
        self._restored: LoiteringState | None = None
        self._restored_pause = 0.0
        self._placeholder: dict[int, int] = {}

    def pause(self, seconds: float) -> None:
        """Leave ``seconds`` out of every duration (a camera outage).

        Nobody is observed while the camera is offline: the gap must neither end a
        visit (a person still there afterwards is the same visit) nor count as
        dwell. Every time column, open event's message clock and the pipeline's
        own clock move forward by ``seconds``; ``ended_at`` and ``started_at``
        stay wall-clock times.

        Args:
            seconds: Length of the outage (``<= 0``: nothing happens).
        """
        seconds = float(seconds)
        if not math.isfinite(seconds) or seconds <= 0.0:
            return
        if self._restored is not None:
            self._restored_pause += seconds
        for name in (*_CLOCK_COLS, "jump_t", "ref_t"):
            setattr(self, name, getattr(self, name) + seconds)
        for ev in self.open.values():
            ev.last_msg += seconds
        if self._last_mono is not None:
            self._last_mono += seconds

    # ------------------------------------------------------------ restarts
    def snapshot(self) -> dict[str, object] | None:
        """The open visits to keep across a worker restart (JSON-safe), or None.

        Pending presence runs (not yet a visit) and cooldowns are not kept: a new
        worker's tracks are new objects to it. Times are epoch seconds (the
        monotonic clock does not survive a reboot) and positions are relative to
        the frame, so the state is independent of both.
        """
        if self._restored is not None:
            # Not yet taken up by a frame: keep what was restored.
            return self._restored.model_dump(mode="json")
        rows = np.flatnonzero(~np.isnan(self.visit))
        if not rows.size or self._last_mono is None or self._last_ts is None:
            return None
        w, h = self._wh or (1, 1)
        scale = np.array([w, h, w, h], dtype=np.float64)
        mono, ts = self._last_mono, self._last_ts
        # Times at full precision: rounded to the millisecond, an event's
        # started_at moved after a restart and its end could come before its start
        # (found by tests/unit/pipelines/test_rule_invariants.py).
        visits = []
        for i in rows:
            tid = int(self.ids[i])
            ev = self.open.get(tid)
            saved_ev = None
            if ev is not None:
                saved_ev = SavedLoiteringEvent(
                    event_id=ev.event_id,
                    revision=max(ev.revision, 0),
                    started_at=ev.started_at,
                    last_msg_ts=ts - (mono - ev.last_msg),
                    threshold_s=ev.threshold_s,
                    severity=Severity(ev.severity),
                    schedule=ev.schedule,
                    dwell_s=ev.dwell,
                )
            visits.append(
                SavedVisit(
                    tracker_id=max(self._placeholder.get(tid, tid), 0),
                    class_id=int(self.cls[i]),
                    anchor=(round(self.ax[i] / w, 5), round(self.ay[i] / h, 5)),
                    box=tuple(np.round(self.box[i] / scale, 5).tolist()),  # type: ignore[arg-type]
                    visit_ts=float(ts - (mono - self.visit[i])),
                    last_in_ts=float(self.last_in_ts[i]),
                    last_seen_ts=float(ts - (mono - self.last_seen[i])),
                    event=saved_ev,
                )
            )
        return LoiteringState(
            rule_id=self.rule.id, camera_id=self._camera_id, ts=ts, visits=tuple(visits)
        ).model_dump(mode="json")

    def restore(self, state: object) -> bool:
        """Continue the open visits of a :meth:`snapshot` taken before a restart.

        Call before the first :meth:`update`. The visits come back on the first
        frame as vanished visitors: a new track in the zone within ``grace_s`` and
        ``reid_distance`` of one takes it over (dwell and event continue); one
        nobody takes over ends after ``grace_s`` with an ``end`` of its own event.
        Bad or foreign state is logged and ignored.

        Args:
            state: A dict as returned by :meth:`snapshot`.

        Returns:
            Whether the state was taken.
        """
        st = parse_saved_state(LoiteringState, state, "loitering", self.rule.id, log)
        if st is None:
            return False
        self.reset()
        self._restored = st
        if st.camera_id:
            self._camera_id = st.camera_id
        log.info(
            "loitering %s: restored %d open visit(s) (%d with an event)",
            self.rule.id,
            len(st.visits),
            len(self.restored_events()),
        )
        return True

    def restored_events(self) -> set[str]:
        """Ids of the saved open events this pipeline continues after
        :meth:`restore` (the worker must not end them as orphans)."""
        if self._restored is None:
            return set()
        return {str(v.event.event_id) for v in self._restored.visits if v.event}

    def _take_up_restored(self, now: float, ts: float) -> None:
        """Turn restored visits into state rows on the first frame after a restart.

        Epoch times go onto this process's clock with
        :func:`pipelines.base.restored_clock_offset`, which leaves the outage
        paused out before this frame (:meth:`pause`) out of dwell.
        """
        st, pause = self._restored, self._restored_pause
        self._restored, self._restored_pause = None, 0.0
        if st is None or not st.visits:
            return
        w, h = self._wh or (1, 1)
        n = len(st.visits)
        # Negative placeholder ids: the new tracker may hand out the old ids again
        # (if its own saved next id was lost); a restored row must not match them.
        start = min(0, int(self.ids.min()) if self.ids.size else 0)
        ph = np.arange(start - 1, start - 1 - n, -1, dtype=np.int64)
        cls = np.array([v.class_id for v in st.visits], dtype=np.int64)
        boxes = np.array([v.box for v in st.visits], dtype=np.float64)
        boxes *= np.array([w, h, w, h], dtype=np.float64)
        self._append(ph, cls, boxes)
        rows = np.arange(self.ids.size - n, self.ids.size)

        offset = restored_clock_offset(now, ts, st.ts, pause)

        def mono(col: list[float]) -> npt.NDArray[np.float64]:
            return np.asarray(col, dtype=np.float64) + offset

        self.visit[rows] = mono([v.visit_ts for v in st.visits])
        self.first_in[rows] = self.visit[rows]
        self.last_in[rows] = mono([v.last_in_ts for v in st.visits])
        self.last_in_ts[rows] = [v.last_in_ts for v in st.visits]
        self.last_seen[rows] = mono([v.last_seen_ts for v in st.visits])
        self.ax[rows] = [v.anchor[0] * w for v in st.visits]
        self.ay[rows] = [v.anchor[1] * h for v in st.visits]
        self.gone[rows] = True
        for pid, v in zip(ph.tolist(), st.visits, strict=True):
            self._placeholder[pid] = v.tracker_id
            if v.event is not None:
                e = v.event
                self.open[pid] = _Open(
                    event_id=e.event_id,
                    # One revision skipped: a message sent after the last save
                    # must not share its revision with the next one.
                    revision=e.revision + 1,
                    started_at=e.started_at,
                    last_msg=float(mono([e.last_msg_ts])[0]),
                    threshold_s=e.threshold_s,
                    severity=e.severity.value,
                    schedule=e.schedule,
                    dwell=e.dwell_s,
                )

    def __len__(self) -> int:
        """Rows of per-track state held (for memory-bound tests)."""
        return int(self.ids.size)

    def _append(
        self,
        tids: npt.NDArray[np.int64],
        cls: npt.NDArray[np.int64],
        boxes: npt.NDArray[np.float64],
    ) -> None:
        n = tids.size
        self.ids = np.concatenate([self.ids, tids])
        self.cls = np.concatenate([self.cls, cls])
        self.box = np.concatenate([self.box, boxes])
        self.gone = np.concatenate([self.gone, np.zeros(n, dtype=bool)])
        fill = {"cooldown": -math.inf}
        for name in _FLOAT_COLS:
            col = np.full(n, fill.get(name, math.nan), dtype=np.float64)
            setattr(self, name, np.concatenate([getattr(self, name), col]))

    def _keep(self, mask: npt.NDArray[np.bool_]) -> None:
        for name in ("ids", "cls", "box", "gone", *_FLOAT_COLS):
            setattr(self, name, getattr(self, name)[mask])

    def _geometry(self, frame: Frame) -> PolygonZone:
        wh = frame.resolution_wh
        if self._zone is None or wh != self._wh:
            if self._wh is not None:
                log.info(
                    "loitering %s: resolution %s -> %s, rebuilding zone",
                    self.rule.id,
                    self._wh,
                    wh,
                )
            self._zone = PolygonZone.from_relative(self.zone_cfg.polygon, wh)
            self._wh = wh
            self._reid_px = self.rule.reid_distance * math.hypot(*wh)
        return self._zone

    # ------------------------------------------------------------------ update
    def update(
        self,
        frame: Frame,
        detections: Detections,
        removed_ids: npt.NDArray[np.int64],
    ) -> list[Event]:
        """Consume one frame; return loitering events (start/update/end).

        Args:
            frame: The frame (``mono`` for durations, ``ts`` for timestamps).
            detections: Confirmed tracks, ``tracker_id`` set (may be empty).
            removed_ids: ``(K,)`` tracker ids removed by the tracker this frame.
        """
        now, ts = float(frame.mono), float(frame.ts)
        if self._last_mono is not None and now < self._last_mono:
            log.warning(
                "loitering %s: monotonic time went backwards (%.3f -> %.3f); "
                "resetting state",
                self.rule.id,
                self._last_mono,
                now,
            )
            self.reset()
        self._last_mono, self._last_ts = now, ts
        self._camera_id = frame.camera_id
        zone = self._geometry(frame)
        if self._restored is not None:
            self._take_up_restored(now, ts)
        try:
            tids, anchors, cls, boxes = select_tracks(
                detections, self.class_ids, self.rule.anchor
            )
        except ValueError as exc:
            log.error("loitering %s: ignoring bad detections: %s", self.rule.id, exc)
            tids, anchors, cls, boxes = select_tracks(
                Detections.empty(), self.class_ids, self.rule.anchor
            )
        inzone = zone.trigger(anchors)
        rule = self.rule
        # Thresholds in force on this frame (a schedule may set its own grace).
        active = self.scheduler.at(ts)
        grace = active.grace_s if active.grace_s is not None else rule.grace_s

        removed = np.asarray(removed_ids, dtype=np.int64).reshape(-1)
        if removed.size and self.ids.size:
            self.gone |= np.isin(self.ids, removed) & ~np.isin(self.ids, tids)

        rows, found = lookup_rows(self.ids, tids)
        hand_back = self._reid_px > 0
        if hand_back and found.any():
            self._note_jumps(rows[found], anchors[found], boxes[found], now)
        if (~found).any():
            self._link_new(tids, anchors, cls, boxes, inzone, found, rows, now, grace)
            rows, found = lookup_rows(self.ids, tids)
            new = ~found
            self._append(tids[new], cls[new], boxes[new])
            rows, found = lookup_rows(self.ids, tids)
            self._presence_from_birth(detections, zone, new, rows, inzone, now, grace)

        # Observations of visible tracks.
        self.last_seen[rows] = now
        if hand_back:
            self._measure_speed(rows, anchors, boxes, now)
        self.ax[rows], self.ay[rows] = anchors[:, 0], anchors[:, 1]
        self.box[rows] = boxes
        self.cls[rows] = cls
        self.gone[rows] = False
        r_in, r_out = rows[inzone], rows[~inzone]
        self.first_in[r_in] = np.where(
            np.isnan(self.first_in[r_in]), now, self.first_in[r_in]
        )
        self.last_in[r_in] = now
        self.last_in_ts[r_in] = ts
        # Out of zone before the visit opened: the run is broken (flicker guard).
        pending_out = r_out[np.isnan(self.visit[r_out])]
        self.first_in[pending_out] = math.nan

        no_visit = np.isnan(self.visit)
        pending = no_visit & ~np.isnan(self.first_in)
        self.first_in[pending & (now - self.last_in > grace)] = math.nan
        pending = no_visit & ~np.isnan(self.first_in)
        confirm = pending & (self.last_in - self.first_in >= rule.entry_s)
        self.visit[confirm] = self.first_in[confirm]

        events: list[Event] = []
        # Visits that end: no in-zone observation for more than grace_s.
        ending = ~np.isnan(self.visit) & (now - self.last_in > grace)
        for i in np.flatnonzero(ending):
            tid = int(self.ids[i])
            ev = self.open.pop(tid, None)
            if ev is not None:
                events.append(self._message(ev, int(i), ts, EventState.END))
                self.cooldown[i] = now + rule.cooldown_s
        self.visit[ending] = math.nan
        self.first_in[ending] = math.nan

        # Starts.
        if active.enabled and self.ids.size:
            has_open = np.isin(self.ids, np.fromiter(self.open, np.int64))
            dwell = now - self.visit
            start = (
                ~np.isnan(self.visit)
                & (dwell >= active.threshold_s)
                & (self.last_in == now)
                & (now >= self.cooldown)
                & ~has_open
            )
            for i in np.flatnonzero(start):
                ev = _Open(
                    event_id=uuid.uuid4(),
                    revision=-1,
                    started_at=ts,
                    last_msg=now,
                    threshold_s=active.threshold_s,
                    severity=active.severity,
                    schedule=active.schedule,
                )
                self.open[int(self.ids[i])] = ev
                events.append(self._message(ev, int(i), ts, EventState.START))

        # Updates of open events every update_s.
        if self.open:
            orows, ofound = lookup_rows(self.ids, np.fromiter(self.open, np.int64))
            for tid, i, ok in zip(list(self.open), orows, ofound, strict=True):
                ev = self.open[tid]
                if ok and (ev.handed or now - ev.last_msg >= rule.update_s):
                    events.append(self._message(ev, int(i), ts, EventState.UPDATE))

        # Bounded memory: drop removed tracks without a visit, and stale rows.
        if self.ids.size:
            no_visit = np.isnan(self.visit)
            stale = now - self.last_seen > grace + rule.cooldown_s + _STALE_S
            drop = no_visit & (self.gone | stale)
            if drop.any():
                for tid in self.ids[drop]:
                    self.open.pop(int(tid), None)
                    self._placeholder.pop(int(tid), None)
                self._keep(~drop)
        return events

    # ------------------------------------------------------------------ helpers
    def _presence_from_birth(
        self,
        detections: Detections,
        zone: PolygonZone,
        new: npt.NDArray[np.bool_],
        rows: npt.NDArray[np.intp],
        inzone: npt.NDArray[np.bool_],
        now: float,
        grace: float,
    ) -> None:
        """Start a new track's presence run at its first detection.

        The tracker reports a track from its second detection on; its first one
        (``data["birth_*"]``, :func:`monitor.zones.select_births`) was the same
        object, seen then. When it was already in the zone then, and is now, the
        run starts at the birth: dwell is time in the zone, not time since the
        tracker was sure (issue #5: on the MOT benchmark a visit first detected a
        step before its confirmation reached the threshold a frame too late).
        Births more than ``grace_s`` old are ignored (a gap the run could not
        bridge anyway). Rows an id switch handed over (``_link_new``) keep their
        visit.

        Args:
            detections: This frame's tracks, as given to :meth:`update`.
            zone: The zone.
            new: ``(N,)`` rows of ``select_tracks`` that are new tracks.
            rows: ``(N,)`` their state rows.
            inzone: ``(N,)`` whether their anchor is in the zone now.
            now: This frame's monotonic time.
            grace: The ``grace_s`` in force.
        """
        births = select_births(detections, self.class_ids)
        if births is None or births[1].size != new.size:
            return
        sel = new & inzone
        if not sel.any():
            return
        boxes, mono = births[0][sel], births[1][sel]
        age = now - mono
        ok = (age > 0.0) & (age <= grace)
        ok &= zone.trigger(anchor_points(boxes, self.rule.anchor).astype(np.float64))
        r = rows[sel][ok]
        self.first_in[r] = mono[ok]
        self.last_in[r] = mono[ok]

    def _note_jumps(
        self,
        rows: npt.NDArray[np.intp],
        anchors: npt.NDArray[np.float64],
        boxes: npt.NDArray[np.float64],
        now: float,
    ) -> None:
        """Remember where visiting tracks that stood still jumped from.

        Args:
            rows: ``(K,)`` rows of tracks visible now (their columns still hold
                the previous observation).
            anchors: ``(K, 2)`` their anchors now, px.
            boxes: ``(K, 4)`` their boxes now, px.
            now: This frame's time, seconds.
        """
        ax, ay = self.ax[rows], self.ay[rows]
        step = _box_dist(boxes, ax, ay, anchors[:, 0], anchors[:, 1])
        # Speed up to the previous observation: over the running baseline if it
        # is long enough, else the last finished one (nan: never measured).
        base = self.last_seen[rows] - self.ref_t[rows]
        moved = _box_dist(boxes, self.ref_x[rows], self.ref_y[rows], ax, ay)
        with np.errstate(invalid="ignore", divide="ignore"):
            speed = np.where(base >= _STILL_MIN_S, moved / base, self.speed[rows])
        jump = (
            ~np.isnan(self.visit[rows])
            & (now - self.last_seen[rows] <= _JUMP_STEP_S)
            & (step > _JUMP_BOX)
            & (speed < _STILL_BOX_S)
        )
        r = rows[jump]
        self.jump_t[r] = now
        self.jx[r], self.jy[r] = self.ax[r], self.ay[r]

    def _measure_speed(
        self,
        rows: npt.NDArray[np.intp],
        anchors: npt.NDArray[np.float64],
        boxes: npt.NDArray[np.float64],
        now: float,
    ) -> None:
        """Finish speed baselines of at least ``_STILL_BASE_S`` and start new ones
        (also after a jump: the speed before it says nothing about the new place).

        Args:
            rows: ``(K,)`` rows of tracks visible now.
            anchors: ``(K, 2)`` their anchors, px.
            boxes: ``(K, 4)`` their boxes, px.
            now: This frame's time, seconds.
        """
        base = now - self.ref_t[rows]
        due = base >= _STILL_BASE_S  # (nan: no baseline yet -> False)
        jumped = self.jump_t[rows] == now
        done = due & ~jumped
        if done.any():
            r, a = rows[done], anchors[done]
            moved = _box_dist(
                boxes[done], self.ref_x[r], self.ref_y[r], a[:, 0], a[:, 1]
            )
            self.speed[r] = moved / base[done]
        restart = due | jumped | np.isnan(self.ref_t[rows])
        r = rows[restart]
        self.ref_x[r], self.ref_y[r] = anchors[restart, 0], anchors[restart, 1]
        self.ref_t[r] = now

    def _link_new(
        self,
        tids: npt.NDArray[np.int64],
        anchors: npt.NDArray[np.float64],
        cls: npt.NDArray[np.int64],
        boxes: npt.NDArray[np.float64],
        inzone: npt.NDArray[np.bool_],
        found: npt.NDArray[np.bool_],
        rows: npt.NDArray[np.intp],
        now: float,
        grace: float,
    ) -> None:
        """Let new ids in the zone take over visits of the people they are.

        A new id of a visitor's class group takes the visit (and its open event;
        the next message names it) of the nearer of

        * a *vanished* visitor (not visible) whose last anchor is within
          ``reid_distance`` and whose last in-zone observation within ``grace``
          (the ``grace_s`` in force): an id switch;
        * a visiting track that *jumped* (:meth:`_note_jumps`) within ``grace``,
          when the new id is within ``_HAND_BACK_BOX`` of its box widths of the
          place the jumper left and nearer to it than the jumper is now: the
          tracker gave the person's id to a neighbour (issue #5 follow-up, session
          7, concourse_people.avi: a person's 1.4 s of dwell went with their id to
          the neighbour beside them, and their own event came 2.8 s late). The
          jumper is then the neighbour: it takes a vanished visitor's visit where
          it stands now (the neighbour's own, whose id it took) if there is one,
          else starts a new visit at the jump.
        """
        if self._reid_px <= 0 or self.ids.size == 0:
            return
        visible = np.zeros(self.ids.size, dtype=bool)
        visible[rows[found]] = True
        cand = (
            ~np.isnan(self.visit)
            & ~visible
            & (self.last_seen < now)
            & (now - self.last_in <= grace)
        )
        left = ~np.isnan(self.jump_t) & ~np.isnan(self.visit) & visible
        left &= now - self.jump_t <= grace
        if not (cand.any() or left.any()):
            return
        row_group = self._groups(self.cls)
        new_group = self._groups(cls)
        here = np.zeros((self.ids.size, 2))  # anchors of visible rows now
        here[rows[found]] = anchors[found]
        born: list[dict[str, float]] = []  # rows of newcomers taking a left place
        newcomers: list[int] = []
        for j in np.flatnonzero(~found & inzone):
            same = row_group == new_group[j]
            d = np.hypot(self.ax - anchors[j, 0], self.ay - anchors[j, 1])
            d = np.where(cand & same & (d <= self._reid_px), d, math.inf)
            dj = np.hypot(self.jx - anchors[j, 0], self.jy - anchors[j, 1])
            width = max(float(boxes[j, 2] - boxes[j, 0]), 1.0)
            jumper = np.hypot(here[:, 0] - anchors[j, 0], here[:, 1] - anchors[j, 1])
            dj = np.where(
                left & same & (dj <= _HAND_BACK_BOX * width) & (dj < jumper),
                dj,
                math.inf,
            )
            i, k = int(np.argmin(d)), int(np.argmin(dj))
            if dj[k] < d[i]:
                born.append(self._hand_back(k, int(tids[j]), here[k], cand, same, now))
                newcomers.append(int(j))
                left[k] = False
                continue
            if not math.isfinite(d[i]):
                continue
            old, new = int(self.ids[i]), int(tids[j])
            log.debug(
                "loitering %s: track %d continues vanished track %d",
                self.rule.id,
                new,
                old,
            )
            self.ids[i] = new
            self.gone[i] = False
            cand[i] = False
            self._placeholder.pop(old, None)
            self._move_event(old, new)
        if newcomers:
            nc = np.asarray(newcomers)
            self._append(tids[nc], cls[nc], boxes[nc])
            for r, cols in zip(
                range(self.ids.size - nc.size, self.ids.size), born, strict=True
            ):
                for name, value in cols.items():
                    getattr(self, name)[r] = value

    def _hand_back(
        self,
        i: int,
        new: int,
        at: npt.NDArray[np.float64],
        cand: npt.NDArray[np.bool_],
        same: npt.NDArray[np.bool_],
        now: float,
    ) -> dict[str, float]:
        """New id ``new`` takes row ``i``'s visit at the place row ``i`` jumped
        away from; row ``i`` (now at ``at``) takes a vanished visit there or starts
        afresh (:meth:`_link_new`). ``cand``: vanished visitors (the one taken is
        cleared, in place); ``same``: rows of row ``i``'s class group.

        Returns:
            The newcomer's row values (appended by the caller).
        """
        old = int(self.ids[i])
        log.debug(
            "loitering %s: track %d takes the visit track %d jumped away from",
            self.rule.id,
            new,
            old,
        )
        cols = {name: float(getattr(self, name)[i]) for name in _VISIT_COLS}
        cols.update(
            last_seen=float(self.last_seen[i]),
            ax=float(self.jx[i]),
            ay=float(self.jy[i]),
        )
        self._move_event(old, new)
        jt = float(self.jump_t[i])
        self.jump_t[i] = math.nan
        self.cooldown[i] = -math.inf
        # The jumper is the neighbour: their own vanished visit, where it stands.
        d = np.hypot(self.ax - at[0], self.ay - at[1])
        d = np.where(cand & same, d, math.inf)
        v = int(np.argmin(d))
        if d[v] <= self._reid_px:
            for name in _VISIT_COLS:
                getattr(self, name)[i] = getattr(self, name)[v]
            gone_id = int(self.ids[v])
            self._move_event(gone_id, old)
            self._placeholder.pop(gone_id, None)
            # The vanished row keeps no visit: dropped once the tracker removes it.
            self.visit[v] = self.first_in[v] = math.nan
            cand[v] = False
            return cols
        # Else a new visit: present (in the zone) since the jump.
        here_since = self.last_in[i] >= jt
        self.first_in[i] = jt if here_since else math.nan
        self.visit[i] = jt if here_since and now - jt >= self.rule.entry_s else math.nan
        return cols

    def _move_event(self, old: int, new: int) -> None:
        """The open event of track ``old`` (if any) now belongs to ``new``; its next
        message names ``new`` (sent on this frame)."""
        if old in self.open:
            ev = self.open[new] = self.open.pop(old)
            ev.handed = True

    def _message(self, ev: _Open, i: int, ts: float, state: EventState) -> Event:
        ev.revision += 1
        ev.handed = False
        ended = state is EventState.END
        # Dwell so far = observed time in the visit (up to the last in-zone frame).
        dwell = max(round(float(self.last_in[i] - self.visit[i]), 3), ev.dwell, 0.0)
        ev.dwell = dwell
        if not ended:
            ev.last_msg = float(self._last_mono or 0.0)
        cid = int(self.cls[i])
        tid = int(self.ids[i])
        payload = LoiteringPayload(
            rule_id=self.rule.id,
            zone_id=self.zone_cfg.id,
            # A restored visit nobody took over reports its old track's id.
            tracker_id=self._placeholder.get(tid, tid),
            class_name=(
                self.class_names[cid] if 0 <= cid < len(self.class_names) else str(cid)
            ),
            dwell_s=dwell,
            bbox_xyxy=tuple(float(v) for v in self.box[i]),  # type: ignore[arg-type]
            schedule=ev.schedule,
            threshold_s=ev.threshold_s,
        )
        return Event(
            event_id=ev.event_id,
            revision=ev.revision,
            camera_id=self._camera_id,
            kind=EventKind.LOITERING,
            state=state,
            severity=ev.severity,
            ts=utc_datetime(ts),
            started_at=utc_datetime(ev.started_at),
            ended_at=utc_datetime(float(self.last_in_ts[i])) if ended else None,
            payload=payload,
        )
