"""Vehicle flow: directed line crossings counted per class in time buckets.

What counts as one crossing (see also :class:`monitor.zones.LineZone`):

* direction is the sign of the motion across the line relative to the line's
  configured ``in_direction`` ("in") — never the order of the line's endpoints;
* a track's side only changes once its anchor is more than ``hysteresis`` × frame
  diagonal beyond the line, so jitter on the line (or a vehicle stopped on it)
  cannot produce a crossing;
* the anchor must project onto the segment (crossing beside the line's ends is not
  counted);
* each track counts at most once per direction on this line, and a crossing back
  within ``switch_window_s`` of the track's previous crossing is jitter (a box
  wobbling on the line by more than the band), not a count;
* only tracks the tracker reports (confirmed tracks) are seen at all;
* id switches: a *new* id appearing within ``switch_window_s`` and
  :data:`LINK_FRACTION` × diagonal of a track that is no longer visible inherits
  that track's side and counted directions; and a crossing in the same direction
  within ``switch_window_s`` and that distance of a counted crossing by a track that
  is no longer visible is taken as the same object and not counted again.

Counts go out as one ``vehicle_flow`` event per (rule, bucket): buckets are
``bucket_s`` long, aligned to the Unix epoch (UTC). ``start`` on the bucket's first
count, ``update`` after each frame that adds counts (cumulative per class for this
pipeline's lifetime in the bucket), ``end`` on the first frame whose ``ts`` is past
the bucket end. After a restart the same bucket gets a new event id; a bucket's
total is the sum over its events. A crossing against ``one_way`` of a class in
``wrong_way_classes`` also raises an ``instant`` ``wrong_way`` event (the crossing
is still counted).
"""

from __future__ import annotations

import collections
import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from config.rules import VehicleFlowRuleConfig
from config.schema import LineConfig
from monitor.events import (
    Event,
    EventKind,
    EventState,
    Severity,
    VehicleFlowPayload,
    WrongWayPayload,
)
from monitor.types import Detections, Frame
from monitor.zones import LineZone, lookup_rows, select_tracks
from pipelines.schedule import utc_datetime

__all__ = ["LINK_FRACTION", "Crossing", "VehicleFlowPipeline"]

log = logging.getLogger(__name__)

LINK_FRACTION = 0.06
"""Fraction of the frame diagonal within which a new id is taken as an id switch."""

_STALE_S = 60.0
_COLS = (
    "ids",
    "last_seen",
    "ax",
    "ay",
    "done_in",
    "done_out",
    "last_dir",
    "last_flip",
    "gone",
)


@dataclass(frozen=True, slots=True)
class Crossing:
    """One counted crossing.

    Attributes:
        tracker_id: Track that crossed.
        class_name: Its class.
        direction: ``"in"`` or ``"out"``.
        mono: Monotonic time of the frame.
        ts: Wall-clock epoch seconds of the frame.
        point: ``(x, y)`` anchor in pixels after the crossing.
        bbox: ``(x1, y1, x2, y2)`` in pixels.
    """

    tracker_id: int
    class_name: str
    direction: str
    mono: float
    ts: float
    point: tuple[float, float]
    bbox: tuple[float, float, float, float]


class VehicleFlowPipeline:
    """Counts crossings of one line (see module docstring).

    Args:
        rule: The rule's configuration.
        line: The line it counts.
        class_names: Detector class names, index == class id.
        timezone: Unused (buckets are UTC-aligned); kept for a uniform signature.
    """

    def __init__(
        self,
        rule: VehicleFlowRuleConfig,
        line: LineConfig,
        class_names: Sequence[str],
        timezone: str = "UTC",
    ) -> None:
        self.rule = rule
        self.line_cfg = line
        self.class_names = tuple(class_names)
        missing = [c for c in rule.classes if c not in self.class_names]
        if missing:
            raise ValueError(
                f"vehicle_flow rule {rule.id!r}: detector has no class(es) {missing}"
            )
        self.class_ids = np.array(
            [self.class_names.index(c) for c in rule.classes], np.int64
        )
        self.wrong_way_ids = np.array(
            [
                self.class_names.index(c)
                for c in rule.wrong_way_classes
                if c in self.class_names
            ],
            np.int64,
        )
        self._line: LineZone | None = None
        self._wh: tuple[int, int] | None = None
        self._link_px = 0.0
        self.reset()

    def reset(self) -> None:
        """Forget tracks, sides and the open bucket (a restart)."""
        if self._line is not None:
            self._line.reset()
        self.ids = np.zeros(0, np.int64)
        self.last_seen = np.zeros(0, np.float64)
        self.ax = np.zeros(0, np.float64)
        self.ay = np.zeros(0, np.float64)
        self.done_in = np.zeros(0, bool)
        self.done_out = np.zeros(0, bool)
        self.last_dir = np.zeros(0, np.int8)  # +1 in / -1 out: last side change
        self.last_flip = np.zeros(0, np.float64)  # mono of that change
        self.gone = np.zeros(0, bool)  # removed by the tracker
        self.recent: collections.deque[Crossing] = collections.deque()
        self.crossings: list[Crossing] = []
        self.last_mono: float | None = None
        self.bucket_start: float | None = None
        self.event_id: uuid.UUID | None = None
        self.revision = -1
        self.counts_in: dict[str, int] = {}
        self.counts_out: dict[str, int] = {}
        self._camera_id = ""

    def __len__(self) -> int:
        """Rows of per-track state held (for memory-bound tests)."""
        return int(self.ids.size)

    def _geometry(self, frame: Frame) -> LineZone:
        wh = frame.resolution_wh
        if self._line is None or wh != self._wh:
            if self._wh is not None:
                log.info("vehicle_flow %s: resolution changed to %s", self.rule.id, wh)
            cfg = self.line_cfg
            self._line = LineZone.from_relative(
                cfg.start, cfg.end, cfg.in_direction, wh, self.rule.hysteresis
            )
            self._wh = wh
            self._link_px = LINK_FRACTION * math.hypot(*wh)
        return self._line

    def _keep(self, mask: npt.NDArray[np.bool_]) -> None:
        for name in _COLS:
            setattr(self, name, getattr(self, name)[mask])

    # ------------------------------------------------------------------ update
    def update(
        self,
        frame: Frame,
        detections: Detections,
        removed_ids: npt.NDArray[np.int64],
    ) -> list[Event]:
        """Consume one frame; return vehicle_flow and wrong_way events.

        Args:
            frame: The frame (``mono`` for durations, ``ts`` for buckets).
            detections: Confirmed tracks, ``tracker_id`` set (may be empty).
            removed_ids: ``(K,)`` tracker ids removed by the tracker this frame.
        """
        now, ts = float(frame.mono), float(frame.ts)
        if self.last_mono is not None and now < self.last_mono:
            log.warning("vehicle_flow %s: monotonic time went backwards", self.rule.id)
            self.reset()
        self.last_mono = now
        self._camera_id = frame.camera_id
        self.crossings = []
        line = self._geometry(frame)
        events: list[Event] = []
        # The bucket closes on the first frame past its end, counts or not.
        if (
            self.bucket_start is not None
            and ts >= self.bucket_start + self.rule.bucket_s
        ):
            events.append(self._bucket_message(ts, EventState.END))
            self.bucket_start, self.event_id = None, None

        try:
            tids, anchors, cls, boxes = select_tracks(
                detections, self.class_ids, self.rule.anchor
            )
        except ValueError as exc:
            log.error("vehicle_flow %s: ignoring bad detections: %s", self.rule.id, exc)
            tids, anchors = np.zeros(0, np.int64), np.zeros((0, 2))
            cls, boxes = np.zeros(0, np.int64), np.zeros((0, 4))
        window = self.rule.switch_window_s

        removed = np.asarray(removed_ids, dtype=np.int64).reshape(-1)
        # Vanished tracks stay linkable for switch_window_s, then go.
        if self.ids.size:
            vis = np.isin(self.ids, tids)
            self.gone |= np.isin(self.ids, removed) & ~vis
            expired = ~vis & (now - self.last_seen > window)
            drop = (expired & self.gone) | (now - self.last_seen > window + _STALE_S)
            if drop.any():
                line.forget(self.ids[drop])
                self._keep(~drop)

        rows, found = lookup_rows(self.ids, tids)
        if (~found).any():
            self._link_new(tids, anchors, rows, found, now)
            rows, found = lookup_rows(self.ids, tids)
            new = ~found
            n = int(new.sum())
            self.ids = np.concatenate([self.ids, tids[new]])
            self.last_seen = np.concatenate([self.last_seen, np.full(n, now)])
            self.ax = np.concatenate([self.ax, anchors[new, 0]])
            self.ay = np.concatenate([self.ay, anchors[new, 1]])
            self.done_in = np.concatenate([self.done_in, np.zeros(n, bool)])
            self.done_out = np.concatenate([self.done_out, np.zeros(n, bool)])
            self.last_dir = np.concatenate([self.last_dir, np.zeros(n, np.int8)])
            self.last_flip = np.concatenate([self.last_flip, np.full(n, -math.inf)])
            self.gone = np.concatenate([self.gone, np.zeros(n, bool)])
            rows, found = lookup_rows(self.ids, tids)
        visible = np.zeros(self.ids.size, bool)
        visible[rows] = True
        self.last_seen[rows] = now
        self.ax[rows], self.ay[rows] = anchors[:, 0], anchors[:, 1]

        c_in, c_out = line.trigger(tids, anchors)
        flip = np.where(c_in, 1, np.where(c_out, -1, 0)).astype(np.int8)
        # Crossing straight back over the line soon after a crossing is jitter.
        jitter = (
            (flip != 0)
            & (flip == -self.last_dir[rows])
            & (now - self.last_flip[rows] <= window)
        )
        moved = flip != 0
        self.last_dir[rows[moved]] = flip[moved]
        self.last_flip[rows[moved]] = now
        c_in &= ~self.done_in[rows] & ~jitter
        c_out &= ~self.done_out[rows] & ~jitter
        self.done_in[rows] |= c_in
        self.done_out[rows] |= c_out

        while self.recent and now - self.recent[0].mono > window:
            self.recent.popleft()
        for j in np.flatnonzero(c_in | c_out):
            direction = "in" if c_in[j] else "out"
            tid = int(tids[j])
            pt = (float(anchors[j, 0]), float(anchors[j, 1]))
            if self._switch_duplicate(tid, direction, pt, visible):
                log.debug(
                    "vehicle_flow %s: crossing of %d taken as an id switch",
                    self.rule.id,
                    tid,
                )
                continue
            cid = int(cls[j])
            crossing = Crossing(
                tracker_id=tid,
                class_name=self.class_names[cid],
                direction=direction,
                mono=now,
                ts=ts,
                point=pt,
                bbox=tuple(float(v) for v in boxes[j]),  # type: ignore[arg-type]
            )
            self.crossings.append(crossing)
            self.recent.append(crossing)
            if (
                self.rule.one_way is not None
                and direction != self.rule.one_way
                and cid in self.wrong_way_ids
            ):
                events.append(self._wrong_way(crossing))

        if self.crossings:
            for c in self.crossings:
                counts = self.counts_in if c.direction == "in" else self.counts_out
                counts[c.class_name] = counts.get(c.class_name, 0) + 1
            if self.bucket_start is None:
                bs = self.rule.bucket_s
                self.bucket_start = math.floor(ts / bs) * bs
                self.event_id = uuid.uuid4()
                self.revision = -1
                events.append(self._bucket_message(ts, EventState.START))
            else:
                events.append(self._bucket_message(ts, EventState.UPDATE))
        return events

    # ------------------------------------------------------------------ helpers
    def _link_new(
        self,
        tids: npt.NDArray[np.int64],
        anchors: npt.NDArray[np.float64],
        rows: npt.NDArray[np.intp],
        found: npt.NDArray[np.bool_],
        now: float,
    ) -> None:
        """Let a new id continue a just-vanished track's side and counts."""
        if self.ids.size == 0 or self.rule.switch_window_s <= 0:
            return
        assert self._line is not None
        visible = np.zeros(self.ids.size, bool)
        visible[rows[found]] = True
        cand = (
            ~visible
            & (self.last_seen < now)
            & (now - self.last_seen <= self.rule.switch_window_s)
        )
        if not cand.any():
            return
        for j in np.flatnonzero(~found):
            d = np.hypot(self.ax - anchors[j, 0], self.ay - anchors[j, 1])
            d = np.where(cand, d, math.inf)
            i = int(np.argmin(d))
            if d[i] > self._link_px:
                continue
            old, new = int(self.ids[i]), int(tids[j])
            side = self._line.side_of([old])
            self._line.forget([old])
            self._line.set_sides([new], side)
            self.ids[i] = new
            self.gone[i] = False
            cand[i] = False

    def _switch_duplicate(
        self,
        tid: int,
        direction: str,
        pt: tuple[float, float],
        visible: npt.NDArray[np.bool_],
    ) -> bool:
        vis_ids = set(self.ids[visible].tolist())
        for c in self.recent:
            if (
                c.direction == direction
                and c.tracker_id != tid
                and c.tracker_id not in vis_ids
                and math.hypot(c.point[0] - pt[0], c.point[1] - pt[1]) <= self._link_px
            ):
                return True
        return False

    def _bucket_message(self, ts: float, state: EventState) -> Event:
        assert self.bucket_start is not None and self.event_id is not None
        self.revision += 1
        start = utc_datetime(self.bucket_start)
        end = utc_datetime(self.bucket_start + self.rule.bucket_s)
        ev = Event(
            event_id=self.event_id,
            revision=self.revision,
            camera_id=self._camera_id,
            kind=EventKind.VEHICLE_FLOW,
            state=state,
            severity=Severity.LOW,
            ts=utc_datetime(ts),
            started_at=start,
            ended_at=end if state is EventState.END else None,
            payload=VehicleFlowPayload(
                rule_id=self.rule.id,
                line_id=self.line_cfg.id,
                bucket_start=start,
                bucket_end=end,
                counts_in=dict(self.counts_in),
                counts_out=dict(self.counts_out),
            ),
        )
        if state is EventState.END:
            self.counts_in, self.counts_out = {}, {}
        return ev

    def _wrong_way(self, c: Crossing) -> Event:
        return Event.new(
            camera_id=self._camera_id,
            kind=EventKind.WRONG_WAY,
            state=EventState.INSTANT,
            severity=Severity.HIGH,
            ts=utc_datetime(c.ts),
            started_at=utc_datetime(c.ts),
            payload=WrongWayPayload(
                rule_id=self.rule.id,
                line_id=self.line_cfg.id,
                tracker_id=c.tracker_id,
                class_name=c.class_name,
                direction=c.direction,  # type: ignore[arg-type]
                bbox_xyxy=c.bbox,
            ),
        )
