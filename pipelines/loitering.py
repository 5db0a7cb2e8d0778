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
* **Id switch**: a *new* track id first seen in the zone within ``grace_s`` of a
  visiting track's last in-zone observation, and within ``reid_distance`` × frame
  diagonal of its last anchor, while that track is not visible, takes over the visit
  (and its event): dwell continues instead of restarting.

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

from config.rules import LoiteringRuleConfig
from config.schema import ZoneConfig
from monitor.events import Event, EventKind, EventState, LoiteringPayload
from monitor.types import Detections, Frame, anchor_points
from monitor.zones import PolygonZone, lookup_rows, select_births, select_tracks
from pipelines.schedule import Scheduler, utc_datetime

__all__ = ["LoiteringPipeline"]

log = logging.getLogger(__name__)

# Rows of tracks unseen this long past grace/cooldown are dropped even if the
# tracker never reported their removal (bounded memory).
_STALE_S = 30.0


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


_FLOAT_COLS = (
    "first_in",
    "last_in",
    "last_in_ts",
    "last_seen",
    "visit",
    "cooldown",
    "ax",
    "ay",
)


class LoiteringPipeline:
    """Dwell-time rule over one zone (see module docstring for the definitions).

    Args:
        rule: The rule's configuration.
        zone: The zone it watches.
        class_names: Detector class names, index == class id.
        timezone: IANA time zone of the camera (schedules).
    """

    def __init__(
        self,
        rule: LoiteringRuleConfig,
        zone: ZoneConfig,
        class_names: Sequence[str],
        timezone: str = "UTC",
    ) -> None:
        self.rule = rule
        self.zone_cfg = zone
        self.class_names = tuple(class_names)
        missing = [c for c in rule.classes if c not in self.class_names]
        if missing:
            raise ValueError(
                f"loitering rule {rule.id!r}: detector has no class(es) {missing}"
            )
        self.class_ids = np.array(
            [self.class_names.index(c) for c in rule.classes], dtype=np.int64
        )
        self.scheduler = Scheduler(
            rule.schedules, timezone, rule.min_dwell_s, rule.severity
        )
        self._zone: PolygonZone | None = None
        self._wh: tuple[int, int] | None = None
        self._reid_px = 0.0
        self._last_mono: float | None = None
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
        self.open: dict[int, _Open] = {}
        self._last_mono = None

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
        for name in ("first_in", "last_in", "last_seen", "visit", "cooldown"):
            setattr(self, name, getattr(self, name) + seconds)
        for ev in self.open.values():
            ev.last_msg += seconds
        if self._last_mono is not None:
            self._last_mono += seconds

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
        self._last_mono = now
        self._camera_id = frame.camera_id
        zone = self._geometry(frame)
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
        grace = rule.grace_s

        removed = np.asarray(removed_ids, dtype=np.int64).reshape(-1)
        if removed.size and self.ids.size:
            self.gone |= np.isin(self.ids, removed) & ~np.isin(self.ids, tids)

        rows, found = lookup_rows(self.ids, tids)
        if (~found).any():
            self._link_new(tids, anchors, inzone, found, rows, now)
            rows, found = lookup_rows(self.ids, tids)
            new = ~found
            self._append(tids[new], cls[new], boxes[new])
            rows, found = lookup_rows(self.ids, tids)
            self._presence_from_birth(detections, zone, new, rows, inzone, now)

        # Observations of visible tracks.
        self.last_seen[rows] = now
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
        active = self.scheduler.at(ts)
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
                if ok and now - ev.last_msg >= rule.update_s:
                    events.append(self._message(ev, int(i), ts, EventState.UPDATE))

        # Bounded memory: drop removed tracks without a visit, and stale rows.
        if self.ids.size:
            no_visit = np.isnan(self.visit)
            stale = now - self.last_seen > grace + rule.cooldown_s + _STALE_S
            drop = no_visit & (self.gone | stale)
            if drop.any():
                for tid in self.ids[drop]:
                    self.open.pop(int(tid), None)
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
        """
        births = select_births(detections, self.class_ids)
        if births is None or births[1].size != new.size:
            return
        sel = new & inzone
        if not sel.any():
            return
        boxes, mono = births[0][sel], births[1][sel]
        age = now - mono
        ok = (age > 0.0) & (age <= self.rule.grace_s)
        ok &= zone.trigger(anchor_points(boxes, self.rule.anchor).astype(np.float64))
        r = rows[sel][ok]
        self.first_in[r] = mono[ok]
        self.last_in[r] = mono[ok]

    def _link_new(
        self,
        tids: npt.NDArray[np.int64],
        anchors: npt.NDArray[np.float64],
        inzone: npt.NDArray[np.bool_],
        found: npt.NDArray[np.bool_],
        rows: npt.NDArray[np.intp],
        now: float,
    ) -> None:
        """Hand a vanished visitor's row to a new id that appears where it was."""
        if self._reid_px <= 0 or self.ids.size == 0:
            return
        visible = np.zeros(self.ids.size, dtype=bool)
        visible[rows[found]] = True
        cand = (
            ~np.isnan(self.visit)
            & ~visible
            & (self.last_seen < now)
            & (now - self.last_in <= self.rule.grace_s)
        )
        if not cand.any():
            return
        for j in np.flatnonzero(~found & inzone):
            d = np.hypot(self.ax - anchors[j, 0], self.ay - anchors[j, 1])
            d = np.where(cand, d, math.inf)
            i = int(np.argmin(d))
            if d[i] > self._reid_px:
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
            if old in self.open:
                self.open[new] = self.open.pop(old)

    def _message(self, ev: _Open, i: int, ts: float, state: EventState) -> Event:
        ev.revision += 1
        ended = state is EventState.END
        # Dwell so far = observed time in the visit (up to the last in-zone frame).
        dwell = max(0.0, float(self.last_in[i] - self.visit[i]))
        if not ended:
            ev.last_msg = float(self._last_mono or 0.0)
        cid = int(self.cls[i])
        payload = LoiteringPayload(
            rule_id=self.rule.id,
            zone_id=self.zone_cfg.id,
            tracker_id=int(self.ids[i]),
            class_name=(
                self.class_names[cid] if 0 <= cid < len(self.class_names) else str(cid)
            ),
            dwell_s=round(float(dwell), 3),
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
