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
  within ``switch_window_s`` of the track's previous crossing without having gone
  clearly beyond the line in between is jitter (a box wobbling on the line by more
  than the band), not a count;
* a crossing made by a jump (the anchor moved :data:`HOLD_JUMP` × box size or more
  since the previous observation) that is not yet beyond the jitter distance is
  held until the track is that far beyond the line (or ``switch_window_s`` has
  passed, also for a track no longer seen); jitter straight back
  cancels it, so a false box pulling a track across the line and letting it go
  back counts nothing (:meth:`VehicleFlowPipeline._hold_crossings`);
* only tracks the tracker reports (confirmed tracks) are seen at all; a track
  first seen here starts on the side of its birth detection (the tracker's
  ``data["birth_xyxy"]``, before it was confirmed) when that was at most
  :data:`BIRTH_SIDE_MAX_S` ago, clearly beyond the line (``JITTER_BAND`` × band)
  and the anchor since moved at most :data:`BIRTH_SIDE_SPEED` box sizes/s, so at
  low detection rates a vehicle detected once before the line and next past it
  still counts (:meth:`VehicleFlowPipeline._birth_sides`);
* a track first seen near the line (an id switch or hijack right at it) that moves
  away from it counts as having come from the other side when a track lost there
  moments before was on that side, and no counted crossing in the window was the same
  object by position (:meth:`VehicleFlowPipeline._birth_crossings`); any other track
  first seen beyond the line never counts;
* two tracks that meet on the line from opposite sides and both turn back are an id
  swap between two people crossing opposite ways: one "in" and one "out"
  (:meth:`VehicleFlowPipeline._turn_pairs`);
* a second box on the same vehicle (e.g. "car" and "truck" from class-wise NMS,
  followed as two tracks) does not count twice: a crossing whose box overlaps
  (IoU ≥ :data:`DUPLICATE_IOU`) a visible track that crossed the same way within
  ``switch_window_s`` is dropped; so is a person crossing with a bicycle or
  motorcycle (or the other way round) whose box overlaps it by
  :data:`RIDER_OVERLAP` of the smaller box: the rider and the two-wheeler are one
  road user, counted as the two-wheeler (a rider counted first is re-labelled);
* id switches: a *new* id appearing within ``switch_window_s`` of a track that is
  no longer visible, with a box overlapping that track's last box (IoU ≥
  :data:`LINK_IOU`), inherits that track's side and counted directions; and a
  crossing in the same direction within ``switch_window_s`` of a counted crossing
  by a track that is no longer visible, with overlapping boxes, is taken as the same
  object and not counted again.

Counts go out as one ``vehicle_flow`` event per (rule, bucket): buckets are
``bucket_s`` long, aligned to the Unix epoch (UTC). ``start`` on the bucket's first
count, ``update`` after each frame that adds counts (cumulative per class for this
pipeline's lifetime in the bucket), ``end`` on the first frame whose ``ts`` is past
the bucket end. The open bucket survives a worker restart
(:meth:`VehicleFlowPipeline.snapshot` / :meth:`~VehicleFlowPipeline.restore`, in the
camera's state file): the new worker goes on counting into the same event, or ends it
on its first frame if the bucket is over by then (a bucket with no counts has no
event). A crossing against ``one_way`` of a class in
``wrong_way_classes`` also raises an ``instant`` ``wrong_way`` event (the crossing
is still counted).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from config.rules import VehicleFlowRuleConfig
from config.schema import LineConfig
from monitor.assignment import iou_matrix
from monitor.events import (
    Event,
    EventKind,
    EventState,
    Severity,
    VehicleFlowPayload,
    WrongWayPayload,
)
from monitor.types import Detections, Frame, anchor_points
from monitor.zones import LineZone, lookup_rows, select_births, select_tracks
from pipelines.base import parse_saved_state
from pipelines.schedule import utc_datetime

__all__ = ["DUPLICATE_IOU", "LINK_IOU", "Crossing", "VehicleFlowPipeline"]

log = logging.getLogger(__name__)

LINK_IOU = 0.3
"""Minimum IoU between a vanished track's last box and a new id's box (or between
two crossings' boxes) for them to be taken as one object after an id switch. Boxes,
not centre distances: in a group of pedestrians a neighbour is close but its box
barely overlaps, while an id switch re-detects the same box."""

DUPLICATE_IOU = 0.6
"""IoU above which two visible tracks crossing together are one object."""

RIDDEN = ("bicycle", "motorcycle")
"""Classes a person rides. A person crossing the same way as one of these, their
boxes overlapping by >= :data:`RIDER_OVERLAP` of the smaller box, is one road user
with it, counted once, under the two-wheeler's class (a cyclist is a bicycle, not a
bicycle and a person)."""

RIDER_OVERLAP = 0.3
"""Overlap of a rider's and a two-wheeler's boxes, as a share of the smaller one."""

_STALE_S = 60.0
_SWITCH_GAP_S = 0.5  # an id switch's new track appears this soon after the old one
_VEL_MIN_S = 0.3  # shortest baseline for a velocity estimate, seconds
_VEL_MAX_S = 1.0  # the reference point moves on after this long, seconds
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
    "box",
    "vx",
    "vy",
    "rx",
    "ry",
    "rt",
    "first_seen",
    "far",
    "unsure",
    "bd",
    "bbox0",
    "near_d",
    "near_t",
    "near_x",
    "near_y",
    "app",
    "cls",
    "hold",
    "hold_t",
)


@dataclass(frozen=True, slots=True)
class _Turn:
    """A track that came to the line and went back (see ``_turn_pairs``)."""

    tracker_id: int
    side: int
    mono: float  # time of its closest approach
    x: float  # anchor there, px
    y: float
    ext: float  # box size along the line's normal, px


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


BIRTH_REACH = 0.5
"""A track first seen within ``hysteresis`` + this × its box size (along the line's
normal) of the line may have been born by an id switch right at the line."""

BIRTH_MIN_S = 0.3
"""Track age at which its own motion since birth is measured (same baseline as the
velocity estimate)."""

BIRTH_MAX_S = 1.0
"""A track born near the line that has not clearly moved away by this age never
derives a previous side."""

BIRTH_AWAY = 0.2
"""Distance (× box size along the normal) a track born near the line must have moved
away from it, onto a confirmed side, to be taken as having come from the other side."""

BIRTH_PRED_R = 1.5
"""A predecessor's last anchor is within this × the new box size of its birth
anchor."""

BIRTH_PRED_AGE_S = 0.3
"""A predecessor was tracked at least this long (a clutter track seen for a frame and
lost does not vouch for a person first seen past the line)."""

TURN_APPROACH = 0.5
"""A turning track had come this × its box size (along the normal) towards the line."""
TURN_BACK = 0.3
"""... and went back this × its box size after its closest approach ..."""
TURN_MAX_S = 1.0
"""... within this many seconds of it (people meeting and standing do not count)."""
TURN_DT_S = 0.5
"""Two turns pair when their closest approaches are at most this far apart in time ..."""
TURN_R = 1.5
"""... and at most this × the larger box size apart in the image."""

BIRTH_SIDE_MAX_S = 2.0
"""A track first seen by the rule starts on the side of its first detection (before
the tracker confirmed it) when that was at most this long ago (s): the tracker
confirms at the second detection, 0.4 s after the first at 2.5 detections/s."""

BIRTH_SIDE_SPEED = 4.0
"""... and when the anchor moved at most this many box sizes per second along the
normal from there to its first sight here."""

HOLD_JUMP = 0.3
"""A crossing whose anchor jumped at least this × its box size (along the normal)
since the previous observation, and is not yet clearly beyond the line, is held
(see ``VehicleFlowPipeline._hold_crossings``)."""

JITTER_BAND = 2.0
JITTER_BOX = 0.5
"""A crossing straight back within ``switch_window_s`` is jitter only if the anchor
stayed within max(``JITTER_BAND`` × band, ``JITTER_BOX`` × box size along the normal)
of the line in between; farther out and back is two crossings (an id swap between
people walking opposite ways hands a track back across the line)."""


def _extent(
    boxes: npt.NDArray[np.float64], normal: npt.NDArray[np.float64]
) -> npt.NDArray:
    """``(N,)`` size of ``(N, 4)`` boxes along the line's ``(2,)`` normal, px."""
    wh = boxes[:, 2:] - boxes[:, :2]
    return np.abs(wh[:, 0] * normal[0]) + np.abs(wh[:, 1] * normal[1])


class VehicleFlowState(BaseModel):
    """What survives a worker restart: the open bucket and its event (version 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(1, ge=1, le=1)
    rule_id: str = Field(min_length=1, max_length=200)
    camera_id: str = Field("", max_length=200)
    bucket_start: float = Field(allow_inf_nan=False, description="Epoch seconds")
    bucket_s: int = Field(ge=1, description="Bucket length it was counted in")
    event_id: uuid.UUID
    revision: int = Field(ge=0, le=1_000_000)
    counts_in: dict[str, int] = Field(default_factory=dict, max_length=1000)
    counts_out: dict[str, int] = Field(default_factory=dict, max_length=1000)


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
        self.box = np.zeros((0, 4), np.float64)  # last box, px
        self.vx = np.zeros(0, np.float64)  # anchor velocity, px/s
        self.vy = np.zeros(0, np.float64)
        self.rx = np.zeros(0, np.float64)  # velocity reference anchor and time
        self.ry = np.zeros(0, np.float64)
        self.rt = np.zeros(0, np.float64)
        self.first_seen = np.zeros(0, np.float64)  # mono of the first observation
        self.far = np.zeros(0, np.float64)  # farthest |distance| since the last flip
        self.unsure = np.zeros(0, bool)  # born near the line, previous side not derived
        self.bd = np.zeros(0, np.float64)  # signed distance from the line at birth, px
        self.bbox0 = np.zeros((0, 4), np.float64)  # box at birth, px
        # Closest approach to the line since the last flip (or turn): |distance|,
        # time, anchor, and how far the track had come towards the line by then.
        self.near_d = np.zeros(0, np.float64)
        self.near_t = np.zeros(0, np.float64)
        self.near_x = np.zeros(0, np.float64)
        self.near_y = np.zeros(0, np.float64)
        self.app = np.zeros(0, np.float64)
        self.cls = np.zeros(0, np.int64)  # class id last seen
        # A checked crossing held until the track is clearly beyond the line: +1 in,
        # -1 out, 0 none; and the mono at which it is counted anyway.
        self.hold = np.zeros(0, np.int8)
        self.hold_t = np.zeros(0, np.float64)
        self.turns: collections.deque[_Turn] = collections.deque()
        self.pending: list[tuple[Crossing, frozenset[int], float, int]] = []
        self.recent: collections.deque[Crossing] = collections.deque()
        self.crossings: list[Crossing] = []
        self.last_mono: float | None = None
        self.bucket_start: float | None = None
        self._relabeled = False  # a counted crossing changed class this frame
        self.event_id: uuid.UUID | None = None
        self.revision = -1
        self.counts_in: dict[str, int] = {}
        self.counts_out: dict[str, int] = {}
        self._camera_id = ""

    def snapshot(self) -> dict[str, object] | None:
        """The open bucket to keep across a worker restart (JSON-safe), or None."""
        if self.bucket_start is None or self.event_id is None:
            return None
        return VehicleFlowState(
            rule_id=self.rule.id,
            camera_id=self._camera_id,
            bucket_start=self.bucket_start,
            bucket_s=self.rule.bucket_s,
            event_id=self.event_id,
            revision=max(self.revision, 0),
            counts_in=self.counts_in,
            counts_out=self.counts_out,
        ).model_dump(mode="json")

    def restore(self, state: object) -> bool:
        """Continue counting into the bucket of a :meth:`snapshot` taken before a
        restart (call before the first :meth:`update`). Bad or foreign state, or a
        bucket of another length, is logged and ignored.

        Args:
            state: A dict as returned by :meth:`snapshot`.

        Returns:
            Whether the state was taken.
        """
        st = parse_saved_state(
            VehicleFlowState, state, "vehicle_flow", self.rule.id, log
        )
        if st is None:
            return False
        problem = ""
        if st.bucket_s != self.rule.bucket_s:
            problem = f"{st.bucket_s} s buckets, the rule now has {self.rule.bucket_s}"
        elif any(v < 0 for v in (*st.counts_in.values(), *st.counts_out.values())):
            problem = "negative counts"
        if problem:
            log.warning(
                "vehicle_flow %s: ignoring saved state: %s", self.rule.id, problem
            )
            return False
        self.reset()
        self.bucket_start, self.event_id = st.bucket_start, st.event_id
        # One revision skipped: a message sent after the last save must not share
        # its revision with the next one.
        self.revision = st.revision + 1
        self.counts_in, self.counts_out = dict(st.counts_in), dict(st.counts_out)
        self._camera_id = st.camera_id
        log.info(
            "vehicle_flow %s: restored the open bucket (in %d, out %d)",
            self.rule.id,
            sum(st.counts_in.values()),
            sum(st.counts_out.values()),
        )
        return True

    def restored_events(self) -> set[str]:
        """Id of the saved open bucket event this pipeline continues after
        :meth:`restore` (until its first frame)."""
        if self.last_mono is not None or self.event_id is None:
            return set()
        return {str(self.event_id)}

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
        late: list[tuple[Crossing, int]] = []
        # Vanished tracks stay linkable for switch_window_s, then go.
        if self.ids.size:
            vis = np.isin(self.ids, tids)
            late = self._due_holds(~vis, now, ts)
            self.gone |= np.isin(self.ids, removed) & ~vis
            expired = ~vis & (now - self.last_seen > window)
            drop = (expired & self.gone) | (now - self.last_seen > window + _STALE_S)
            if drop.any():
                line.forget(self.ids[drop])
                self._keep(~drop)

        rows, found = lookup_rows(self.ids, tids)
        # Anchor velocity (px/s) of known tracks, to predict where a vanished one is.
        # Measured over a baseline of >= _VEL_MIN_S: frame-to-frame differences of
        # jittery boxes are mostly noise.
        old = rows[found]
        span = now - self.rt[old]
        ok = span >= _VEL_MIN_S
        safe = np.where(ok, span, 1.0)
        self.vx[old] = np.where(
            ok, (anchors[found, 0] - self.rx[old]) / safe, self.vx[old]
        )
        self.vy[old] = np.where(
            ok, (anchors[found, 1] - self.ry[old]) / safe, self.vy[old]
        )
        move = old[span >= _VEL_MAX_S]
        fmove = found.copy()
        fmove[found] = span >= _VEL_MAX_S
        self.rx[move], self.ry[move], self.rt[move] = (
            anchors[fmove, 0],
            anchors[fmove, 1],
            now,
        )
        if (~found).any():
            new = ~found
            n = int(new.sum())
            base = self.ids.size
            self.ids = np.concatenate([self.ids, tids[new]])
            self.last_seen = np.concatenate([self.last_seen, np.full(n, now)])
            self.ax = np.concatenate([self.ax, anchors[new, 0]])
            self.ay = np.concatenate([self.ay, anchors[new, 1]])
            self.vx = np.concatenate([self.vx, np.zeros(n)])
            self.vy = np.concatenate([self.vy, np.zeros(n)])
            self.rx = np.concatenate([self.rx, anchors[new, 0]])
            self.ry = np.concatenate([self.ry, anchors[new, 1]])
            self.rt = np.concatenate([self.rt, np.full(n, now)])
            self.first_seen = np.concatenate([self.first_seen, np.full(n, now)])
            self.far = np.concatenate([self.far, np.zeros(n)])
            d0 = line.signed_distance(anchors[new])
            t0 = line.along(anchors[new])
            near = (
                (
                    np.abs(d0)
                    <= line.hysteresis_px
                    + BIRTH_REACH * _extent(boxes[new], line.normal)
                )
                & (t0 >= 0.0)
                & (t0 <= 1.0)
            )
            self.unsure = np.concatenate([self.unsure, near & (window > 0)])
            self.bd = np.concatenate([self.bd, d0])
            self.bbox0 = np.concatenate([self.bbox0, boxes[new]])
            self.near_d = np.concatenate([self.near_d, np.full(n, math.inf)])
            self.near_t = np.concatenate([self.near_t, np.full(n, now)])
            self.near_x = np.concatenate([self.near_x, anchors[new, 0]])
            self.near_y = np.concatenate([self.near_y, anchors[new, 1]])
            self.app = np.concatenate([self.app, np.zeros(n)])
            self.cls = np.concatenate([self.cls, cls[new]])
            self.hold = np.concatenate([self.hold, np.zeros(n, np.int8)])
            self.hold_t = np.concatenate([self.hold_t, np.zeros(n)])
            self.done_in = np.concatenate([self.done_in, np.zeros(n, bool)])
            self.done_out = np.concatenate([self.done_out, np.zeros(n, bool)])
            self.last_dir = np.concatenate([self.last_dir, np.zeros(n, np.int8)])
            self.last_flip = np.concatenate([self.last_flip, np.full(n, -math.inf)])
            self.gone = np.concatenate([self.gone, np.zeros(n, bool)])
            self.box = np.concatenate([self.box, boxes[new]])
            # A track's first detections come before its confirmation: its side
            # then is its starting side (a later id-switch link overrides it).
            b_side, b_anchor = self._birth_sides(
                detections, new, anchors[new], boxes[new], now
            )
            line.set_sides(tids[new], b_side)
            # The step from there is checked like any other (jump hold).
            self.ax[base:], self.ay[base:] = b_anchor[:, 0], b_anchor[:, 1]
            self._link_new(base, found, rows, now)
            rows, found = lookup_rows(self.ids, tids)
        visible = np.zeros(self.ids.size, bool)
        visible[rows] = True
        self.last_seen[rows] = now
        prev = np.stack([self.ax[rows], self.ay[rows]], axis=1)  # (a copy)
        self.ax[rows], self.ay[rows] = anchors[:, 0], anchors[:, 1]
        self.box[rows] = boxes

        c_in, c_out = line.trigger(tids, anchors)
        flip = np.where(c_in, 1, np.where(c_out, -1, 0)).astype(np.int8)
        # Crossing straight back over the line soon after a crossing, without having
        # gone clearly beyond it in between, is jitter.
        dist = np.abs(line.signed_distance(anchors))
        reach = np.maximum(
            JITTER_BAND * line.hysteresis_px,
            JITTER_BOX * _extent(boxes, line.normal),
        )
        jitter = (
            (flip != 0)
            & (flip == -self.last_dir[rows])
            & (now - self.last_flip[rows] <= window)
            & (self.far[rows] < reach)
        )
        self.far[rows] = np.maximum(self.far[rows], dist)
        moved = flip != 0
        self.last_dir[rows[moved]] = flip[moved]
        self.last_flip[rows[moved]] = now
        self.far[rows[moved]] = dist[moved]
        c_in &= ~self.done_in[rows] & ~jitter
        c_out &= ~self.done_out[rows] & ~jitter
        c_in, c_out, released = self._hold_crossings(
            rows, c_in, c_out, flip, jitter, dist, reach, prev, anchors, now
        )

        while self.recent and now - self.recent[0].mono > window:
            self.recent.popleft()
        b_in, b_out = self._birth_crossings(rows, tids, anchors, boxes, moved, now)
        c_in |= b_in & ~self.done_in[rows]
        c_out |= b_out & ~self.done_out[rows]
        born = b_in | b_out
        self.last_dir[rows[born]] = np.where(b_in[born], 1, -1)
        self.last_flip[rows[born]] = now
        self.far[rows[born]] = dist[born]
        self.done_in[rows] |= c_in
        self.done_out[rows] |= c_out
        self.cls[rows] = cls
        swapped = self._turn_pairs(rows, anchors, boxes, dist, moved | born, now)
        # Crossings held as possible id-switch duplicates: released when the earlier
        # track shows up again (two objects after all), dropped at the deadline.
        vis_ids = set(tids.tolist())
        still: list[tuple[Crossing, frozenset[int], float, int]] = []
        for crossing, prior, deadline, cid in self.pending:
            if prior & vis_ids:
                events.extend(self._release(crossing, cid))
            elif now <= deadline:
                still.append((crossing, prior, deadline, cid))
            else:
                log.debug(
                    "vehicle_flow %s: crossing of %d dropped as an id switch",
                    self.rule.id,
                    crossing.tracker_id,
                )
        self.pending = still
        for crossing, cid in late:
            events.extend(self._release(crossing, cid))
        for j in np.flatnonzero(c_in | c_out):
            cid = int(cls[j])
            crossing = Crossing(
                tracker_id=int(tids[j]),
                class_name=self.class_names[cid],
                direction="in" if c_in[j] else "out",
                mono=now,
                ts=ts,
                point=(float(anchors[j, 0]), float(anchors[j, 1])),
                bbox=tuple(float(v) for v in boxes[j]),  # type: ignore[arg-type]
            )
            if released[j]:
                # Held since an earlier frame (and checked then): counted now,
                # unless the same road user was counted meanwhile (a rider and a
                # bicycle that jumped over the line a frame apart).
                if not self._same_road_user(crossing, tids, boxes):
                    events.extend(self._release(crossing, cid))
                continue
            if self._same_road_user(crossing, tids, boxes):
                log.debug(
                    "vehicle_flow %s: crossing of %d is a second box of a counted "
                    "object",
                    self.rule.id,
                    crossing.tracker_id,
                )
                self.hold[rows[j]] = 0
                continue
            prior = self._switch_suspects(crossing, vis_ids)
            if prior:
                self.hold[rows[j]] = 0
                self.pending.append((crossing, prior, now + window, cid))
            elif self.hold[rows[j]] == 0:
                events.extend(self._release(crossing, cid))
        for r, direction in swapped:
            crossing = Crossing(
                tracker_id=int(self.ids[r]),
                class_name=self.class_names[int(self.cls[r])],
                direction=direction,
                mono=now,
                ts=ts,
                point=(float(self.ax[r]), float(self.ay[r])),
                bbox=tuple(float(v) for v in self.box[r]),  # type: ignore[arg-type]
            )
            events.extend(self._release(crossing, int(self.cls[r])))

        if self.crossings or self._relabeled:
            self._relabeled = False
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
    def _hold_crossings(
        self,
        rows: npt.NDArray[np.intp],
        c_in: npt.NDArray[np.bool_],
        c_out: npt.NDArray[np.bool_],
        flip: npt.NDArray[np.int8],
        jitter: npt.NDArray[np.bool_],
        dist: npt.NDArray[np.float64],
        reach: npt.NDArray[np.float64],
        prev: npt.NDArray[np.float64],
        anchors: npt.NDArray[np.float64],
        now: float,
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """Hold crossings made by a jump until the track is clearly beyond the line.

        A false box beside a person standing near the line can pull the track
        across it for a few frames and let it go back: the first crossing counted
        and the way back, jitter, did not. Now a crossing whose anchor jumped at
        least :data:`HOLD_JUMP` × box size since the previous observation and is
        still less than the jitter distance ``reach`` beyond the line is *held*
        (after the double-box and id-switch checks, on its own frame): counted once
        the track is ``reach`` beyond the line on the new side, or
        ``switch_window_s`` after the crossing (also when the track is no longer
        visible then, :meth:`_due_holds`). Jitter straight back across the line
        cancels it: neither crossing counts and the track is as if it had never
        crossed. Crossings made walking (small steps) count at once, as before.

        Args:
            rows: ``(N,)`` state rows of the visible tracks.
            c_in: ``(N,)`` new "in" crossings this frame (after the jitter test).
            c_out: ``(N,)`` new "out" crossings.
            flip: ``(N,)`` side change this frame (+1 / -1 / 0).
            jitter: ``(N,)`` side changes that are jitter.
            dist: ``(N,)`` |distance| from the line, px.
            reach: ``(N,)`` jitter distance, px.
            prev: ``(N, 2)`` anchors at the previous observation, px (for tracks
                first seen now: at their birth where that gave their side, else the
                current ones).
            anchors: ``(N, 2)`` anchors, px.
            now: Monotonic time of the frame.

        Returns:
            ``(c_in, c_out, released)``: crossings to check and count this frame
            (new ones, of which those now in ``hold`` are kept back after their
            checks, and held ones released now), and the mask of the released ones.
        """
        window = self.rule.switch_window_s
        none = np.zeros(rows.size, bool)
        held = self.hold[rows]
        crossed = c_in | c_out
        if window <= 0 or not (crossed.any() or held.any()):
            return c_in, c_out, none
        assert self._line is not None
        line = self._line
        d = line.signed_distance(anchors)
        side = np.sign(d).astype(np.int8)
        cancel = jitter & (held != 0) & (flip == -held)
        release = (held != 0) & ~cancel
        release &= ((side == held) & (dist >= reach)) | (now >= self.hold_t[rows])
        if cancel.any():
            cr = rows[cancel]
            log.debug(
                "vehicle_flow %s: held crossing(s) of %s cancelled (jitter back)",
                self.rule.id,
                self.ids[cr].tolist(),
            )
            self.done_in[cr[held[cancel] > 0]] = False
            self.done_out[cr[held[cancel] < 0]] = False
            self.last_dir[cr] = 0
            self.last_flip[cr] = -math.inf
            self.far[cr] = dist[cancel]
            self.hold[cr] = 0
        step = np.abs(d - line.signed_distance(prev))
        ext = _extent(self.box[rows], line.normal)
        new = crossed & (dist < reach) & (step >= HOLD_JUMP * ext)
        self.hold[rows[new]] = np.where(c_in[new], 1, -1)
        self.hold_t[rows[new]] = now + window
        self.hold[rows[release]] = 0
        return (
            c_in | (release & (held > 0)),
            c_out | (release & (held < 0)),
            release,
        )

    def _due_holds(
        self, invisible: npt.NDArray[np.bool_], now: float, ts: float
    ) -> list[tuple[Crossing, int]]:
        """Held crossings of tracks not visible now whose time is up: counted.

        Args:
            invisible: ``(R,)`` state rows not visible on this frame.
            now: Monotonic time of the frame.
            ts: Its wall-clock time.

        Returns:
            ``(crossing, class id)`` per crossing, at the track's last observation.
        """
        if not self.hold.any():
            return []
        due = np.flatnonzero(invisible & (self.hold != 0) & (now >= self.hold_t))
        out: list[tuple[Crossing, int]] = []
        for r in due:
            cid = int(self.cls[r])
            seen = float(self.last_seen[r])
            crossing = Crossing(
                tracker_id=int(self.ids[r]),
                class_name=self.class_names[cid],
                direction="in" if self.hold[r] > 0 else "out",
                mono=seen,
                ts=ts - (now - seen),
                point=(float(self.ax[r]), float(self.ay[r])),
                bbox=tuple(float(v) for v in self.box[r]),  # type: ignore[arg-type]
            )
            out.append((crossing, cid))
        self.hold[due] = 0
        return out

    def _birth_sides(
        self,
        detections: Detections,
        new: npt.NDArray[np.bool_],
        anchors: npt.NDArray[np.float64],
        boxes: npt.NDArray[np.float64],
        now: float,
    ) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float64]]:
        """Side of the line at their birth of the tracks in ``new``.

        The tracker reports a track from its ``min_confirm_hits``-th detection on,
        with its first detection's box and time (``data["birth_xyxy"]``,
        ``data["birth_mono"]``, see :mod:`monitor.tracker`). At low detection rates
        a vehicle detected once before the line and once past it is first seen here
        past it; its birth side makes that a crossing like any other (band, segment
        extent, once per direction). Births more than :data:`BIRTH_SIDE_MAX_S`
        before ``now`` are ignored (a track of a class this rule does not watch that
        switched to one, or a restart of the rule: not the track's recent past).

        Args:
            detections: This frame's tracks (all classes, as given to ``update``).
            new: ``(N,)`` mask over the rows ``select_tracks`` kept: tracks first
                seen now.
            anchors: ``(K,)`` anchors of the ``new`` tracks now, px.
            boxes: ``(K, 4)`` their boxes now, px.
            now: Monotonic time of the frame.

        Returns:
            ``(side, anchor)``: ``(K,)`` side per ``new`` track at its birth (+1/-1;
            0: unknown, not clearly beyond the line, or a jump since), and ``(K,
            2)`` its anchor then (``anchors`` where the side is 0).
        """
        side = np.zeros(anchors.shape[0], np.int8)
        births = select_births(detections, self.class_ids)
        if births is None or self._line is None:
            return side, anchors
        if births[1].size != new.size:  # pragma: no cover - defensive
            return side, anchors
        bx = births[0][new]
        age = now - births[1][new]
        ok = (age >= 0.0) & (age <= BIRTH_SIDE_MAX_S)
        if not ok.any():
            return side, anchors
        line = self._line
        ba = anchor_points(bx, self.rule.anchor)
        d = line.signed_distance(ba)
        ext = np.maximum(_extent(bx, line.normal), _extent(boxes, line.normal))
        # Clearly on a side (one box on the line is noise), and moved from there as
        # a vehicle can (not a jump to another object's box).
        ok &= np.abs(d) >= JITTER_BAND * line.hysteresis_px
        ok &= np.abs(line.signed_distance(anchors) - d) <= BIRTH_SIDE_SPEED * ext * age
        side[ok] = np.sign(d[ok])
        return side, np.where(ok[:, None], ba, anchors)

    def _link_new(
        self,
        base: int,
        found: npt.NDArray[np.bool_],
        rows: npt.NDArray[np.intp],
        now: float,
    ) -> None:
        """New rows (from ``base``) continue the side of a just-vanished track.

        The new id inherits the side and last crossing of the vanished track whose
        box, moved on at its last velocity, overlaps the new box best (IoU ≥
        :data:`LINK_IOU`). The vanished track's row stays: if it shows up again it
        was a different object, and double counts are caught by
        :meth:`_switch_suspects` instead.
        """
        if self.rule.switch_window_s <= 0 or base == 0:
            return
        assert self._line is not None
        visible = np.zeros(base, bool)
        visible[rows[found]] = True
        cand = (
            ~visible
            & (self.last_seen[:base] < now)
            & (now - self.last_seen[:base] <= self.rule.switch_window_s)
        )
        if not cand.any():
            return
        ci = np.flatnonzero(cand)
        gap = (now - self.last_seen[ci])[:, None]
        shift = np.stack([self.vx[ci], self.vy[ci]] * 2, axis=1) * gap
        predicted = self.box[ci] + shift
        new_rows = np.arange(base, self.ids.size)
        overlap = iou_matrix(self.box[new_rows], predicted)  # (new, candidates)
        sides = self._line.side_of(self.ids[ci])
        for k, r in enumerate(new_rows):
            m = int(np.argmax(overlap[k]))
            if overlap[k, m] < LINK_IOU:
                continue
            i = int(ci[m])
            log.debug(
                "vehicle_flow %s: track %d continues vanished track %d",
                self.rule.id,
                int(self.ids[r]),
                int(self.ids[i]),
            )
            self._line.set_sides([self.ids[r]], [sides[m]])
            self.unsure[r] = False
            self.last_dir[r] = self.last_dir[i]
            self.last_flip[r] = self.last_flip[i]
            overlap[:, m] = 0.0

    def _birth_crossings(
        self,
        rows: npt.NDArray[np.intp],
        tids: npt.NDArray[np.int64],
        anchors: npt.NDArray[np.float64],
        boxes: npt.NDArray[np.float64],
        flipped: npt.NDArray[np.bool_],
        now: float,
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """Crossings of tracks born near the line, from their own early motion.

        An id switch or a track hijack inside a walking group often gives a person a
        new id just past the line: the new track has no previous side and would never
        count. A track first seen within :data:`BIRTH_REACH` of the line (see
        ``unsure``) is looked at once it is :data:`BIRTH_MIN_S` old: if it has moved
        away from the line by :data:`BIRTH_AWAY` × its box size onto a confirmed side
        ``s``, it is taken to have come from side ``-s`` when

        * a predecessor exists: another track, first seen before this one,
          tracked for :data:`BIRTH_PRED_AGE_S`, not visible now, last seen on side
          ``-s`` between ``switch_window_s`` before and :data:`BIRTH_MIN_S` after
          this track's birth, with its last anchor within :data:`BIRTH_PRED_R` ×
          the box size of this track's birth anchor (:meth:`_has_predecessor`); a
          person simply first seen past the line, with nobody lost there, never
          counts; and
        * no crossing counted in the window was this object
          (:meth:`_crossed_already`): the fragment of a track that already counted
          does not count twice.

        Python runs only for rows that pass the vectorised motion test.

        Args:
            rows: ``(N,)`` state rows of the visible tracks.
            tids: ``(N,)`` their tracker ids.
            anchors: ``(N, 2)`` anchors, px.
            boxes: ``(N, 4)`` boxes, px.
            flipped: ``(N,)`` tracks whose side changed this frame (they have a
                previous side: the ordinary rule handles them).
            now: Monotonic time of the frame.

        Returns:
            ``(born_in, born_out)``: two ``(N,)`` bool masks.
        """
        assert self._line is not None
        line = self._line
        n = rows.size
        none = np.zeros(n, bool)
        self.unsure[rows[flipped]] = False
        age = now - self.first_seen[rows]
        check = self.unsure[rows] & (age >= BIRTH_MIN_S)
        if not check.any():
            return none, none.copy()
        d = line.signed_distance(anchors)
        side = line.sides(anchors).astype(np.float64)
        ext = _extent(boxes, line.normal)
        away = (d - self.bd[rows]) * side
        ok = check & (side != 0) & (away >= BIRTH_AWAY * ext)
        give_up = check & (age >= BIRTH_MAX_S)
        self.unsure[rows[ok | give_up]] = False
        b_in, b_out = none, none.copy()
        for j in np.flatnonzero(ok):
            r = int(rows[j])
            s = int(side[j])
            speed = (d[j] - self.bd[r]) / max(age[j], 1e-6)  # px/s along the normal
            if not self._has_predecessor(r, s, tids):
                continue
            if self._crossed_already(r, s, speed):
                continue
            log.debug(
                "vehicle_flow %s: track %d born at the line counts from side %d",
                self.rule.id,
                int(self.ids[r]),
                -s,
            )
            if s > 0:
                b_in[j] = True
            else:
                b_out[j] = True
        return b_in, b_out

    def _turn_pairs(
        self,
        rows: npt.NDArray[np.intp],
        anchors: npt.NDArray[np.float64],
        boxes: npt.NDArray[np.float64],
        dist: npt.NDArray[np.float64],
        flipped: npt.NDArray[np.bool_],
        now: float,
    ) -> list[tuple[int, str]]:
        """Two tracks that met at the line from opposite sides and both turned back.

        That is an id swap at the line between two people crossing it in opposite
        directions: each track follows the other person back to where it came from,
        and neither changes side. A track *turns* when it had come
        :data:`TURN_APPROACH` × box size towards the line, got within the band +
        :data:`BIRTH_REACH` × box size of it, and within :data:`TURN_MAX_S` moved
        back :data:`TURN_BACK` × box size without crossing. Two turns of different
        tracks from opposite sides, closest approaches within :data:`TURN_DT_S` of
        each other and :data:`TURN_R` × box size apart, count one crossing each way:
        "in" for the track now on the "in" side, "out" for the other (each track
        still at most once per direction).

        Returns:
            ``(row, direction)`` crossings to count.
        """
        assert self._line is not None
        line = self._line
        while self.turns and now - self.turns[0].mono > TURN_MAX_S + TURN_DT_S:
            self.turns.popleft()
        if rows.size == 0:
            return []
        ext = _extent(boxes, line.normal)
        # Closest approach since the last flip.
        self.near_d[rows[flipped]] = math.inf
        closer = ~flipped & (dist < self.near_d[rows])
        cr = rows[closer]
        self.near_d[cr] = dist[closer]
        self.near_t[cr] = now
        self.near_x[cr] = anchors[closer, 0]
        self.near_y[cr] = anchors[closer, 1]
        self.app[cr] = self.far[cr] - dist[closer]
        near = self.near_d[rows]
        turn = (
            ~flipped
            & (near <= line.hysteresis_px + BIRTH_REACH * ext)
            & (dist - near >= TURN_BACK * ext)
            & (self.app[rows] >= TURN_APPROACH * ext)
            & (now - self.near_t[rows] <= TURN_MAX_S)
        )
        if not turn.any():
            return []
        sides = np.zeros(rows.size, np.int8)
        sides[turn] = line.side_of(self.ids[rows[turn]])
        turn &= sides != 0
        out: list[tuple[int, str]] = []
        for j in np.flatnonzero(turn):
            r = int(rows[j])
            t = _Turn(
                int(self.ids[r]),
                int(sides[j]),
                float(self.near_t[r]),
                float(self.near_x[r]),
                float(self.near_y[r]),
                float(ext[j]),
            )
            # Turning again needs a new approach.
            self.near_d[r] = math.inf
            self.far[r] = dist[j]
            mate = next(
                (
                    u
                    for u in self.turns
                    if u.tracker_id != t.tracker_id
                    and u.side == -t.side
                    and abs(u.mono - t.mono) <= TURN_DT_S
                    and math.hypot(u.x - t.x, u.y - t.y) <= TURN_R * max(u.ext, t.ext)
                ),
                None,
            )
            if mate is None:
                self.turns.append(t)
                continue
            self.turns.remove(mate)
            found_rows, ok = lookup_rows(self.ids, np.array([mate.tracker_id]))
            if not ok[0]:
                continue
            m = int(found_rows[0])
            log.debug(
                "vehicle_flow %s: tracks %d and %d swapped ids on the line",
                self.rule.id,
                t.tracker_id,
                mate.tracker_id,
            )
            for row, side in ((r, t.side), (m, mate.side)):
                if side > 0 and not self.done_in[row]:
                    self.done_in[row] = True
                    out.append((row, "in"))
                elif side < 0 and not self.done_out[row]:
                    self.done_out[row] = True
                    out.append((row, "out"))
                self.last_dir[row] = side
                self.last_flip[row] = now
        return out

    def _has_predecessor(self, r: int, s: int, tids: npt.NDArray[np.int64]) -> bool:
        """Whether a lost track was recently near row ``r``'s birth on side ``-s``.

        Args:
            r: State row of the new track.
            s: Side (+1/-1) the new track moved onto.
            tids: ``(N,)`` tracker ids visible now (a visible track is somebody
                else, not the person who lost their id).
        """
        assert self._line is not None
        others = np.arange(self.ids.size) != r
        recent = self.last_seen >= self.first_seen[r] - self.rule.switch_window_s
        sides = self._line.side_of(self.ids)
        b0 = self.bbox0[r]
        a0 = np.array([(b0[0] + b0[2]) / 2, b0[3]])
        ext = float(_extent(b0[None], self._line.normal)[0])
        dist = np.hypot(self.ax - a0[0], self.ay - a0[1])
        cand = (
            others
            & recent
            & (sides == -s)
            & (dist <= BIRTH_PRED_R * ext)
            & (self.last_seen - self.first_seen >= BIRTH_PRED_AGE_S)
            & ~np.isin(self.ids, tids)
        )
        # The one who lost their id existed before this track and was not seen for
        # long beside it (two tracks seen together are two people).
        cand &= (self.first_seen < self.first_seen[r]) & (
            self.last_seen <= self.first_seen[r] + BIRTH_MIN_S
        )
        return bool(cand.any())

    def _crossed_already(self, r: int, s: int, speed: float) -> bool:
        """Whether a crossing counted in the window was this object, by position.

        The new track's birth box is moved back along the line's normal at its own
        speed to each recent same-direction crossing's time; overlapping that
        crossing's box (IoU ≥ :data:`LINK_IOU`) makes it the same object, whatever
        the ids (the earlier crosser may have been hijacked by a neighbour).

        Args:
            r: State row of the new track.
            s: Side (+1/-1) the new track moved onto.
            speed: Its speed along the normal since birth, px/s (signed).
        """
        direction = "in" if s > 0 else "out"
        assert self._line is not None
        normal = self._line.normal
        b0 = self.bbox0[r]
        t0 = float(self.first_seen[r])
        for c in self.recent:
            if c.direction != direction:
                continue
            back = np.concatenate([normal, normal]) * speed * (c.mono - t0)
            if iou_matrix(np.array([c.bbox]), (b0 + back)[None])[0, 0] >= LINK_IOU:
                return True
        return False

    def _switch_suspects(self, c: Crossing, vis_ids: set[int]) -> frozenset[int]:
        """Earlier crossers this crossing may duplicate after an id switch.

        A suspect crossed in the same direction within ``switch_window_s``, is not
        visible now, was last seen before, and at most 0.5 s before, the crossing
        track was first seen (an id switch replaces a track at once; it does not
        run beside it, nor start long after it), and its last box overlaps this
        crossing's box (IoU ≥ :data:`LINK_IOU`).
        """
        prior = [
            r
            for r in self.recent
            if r.direction == c.direction
            and r.tracker_id != c.tracker_id
            and r.tracker_id not in vis_ids
        ]
        if not prior:
            return frozenset()
        ids = np.array([r.tracker_id for r in prior], np.int64)
        rows, found = lookup_rows(self.ids, ids)
        last = np.where(found, self.last_seen[rows], [r.mono for r in prior])
        me, me_found = lookup_rows(self.ids, np.array([c.tracker_id], np.int64))
        born = float(self.first_seen[me[0]]) if me_found[0] else c.mono
        # Where each earlier crosser was last seen: a duplicate box appears there
        # (the object was lost moments ago); a follower on the same path, seconds
        # behind, does not.
        predicted = np.where(
            found[:, None], self.box[rows], np.array([r.bbox for r in prior])
        )
        ious = iou_matrix(np.array([c.bbox]), predicted)[0]
        hit = (ious >= LINK_IOU) & (last < born) & (born - last <= _SWITCH_GAP_S)
        return frozenset(int(t) for t in ids[hit])

    def _same_road_user(
        self,
        c: Crossing,
        tids: npt.NDArray[np.int64],
        boxes: npt.NDArray[np.float64],
    ) -> bool:
        """Whether a visible track that already crossed this way is the same road
        user (then this crossing is not counted).

        Class-wise NMS can leave two boxes on one vehicle (car + truck) that the
        tracker follows as two tracks; they cross together with nearly identical
        boxes (IoU ≥ :data:`DUPLICATE_IOU`), which two real vehicles side by side
        never have. A rider and the two-wheeler under them overlap by
        :data:`RIDER_OVERLAP` of the smaller box; when the rider was counted first,
        that count is re-labelled as the two-wheeler (:meth:`_relabel`).
        """
        others = {
            r.tracker_id: r.class_name
            for r in self.recent
            if r.direction == c.direction and r.tracker_id != c.tracker_id
        }
        if not others:
            return False
        mask = np.isin(tids, np.fromiter(others, np.int64))
        if not mask.any():
            return False
        box = np.array([c.bbox])
        if (iou_matrix(box, boxes[mask]) >= DUPLICATE_IOU).any():
            return True
        # A rider and the two-wheeler under them are one road user: their boxes
        # overlap by much of the smaller one (the bicycle) but not by IoU.
        partner: tuple[str, ...]
        if c.class_name == "person":
            partner = RIDDEN
        elif c.class_name in RIDDEN:
            partner = ("person",)
        else:
            return False
        pair = np.array([others[int(t)] in partner for t in tids[mask]])
        if not pair.any():
            return False
        ov = _overlap_of_smaller(box, boxes[mask][pair])[0]
        if not (ov >= RIDER_OVERLAP).any():
            return False
        if c.class_name in RIDDEN:
            # The rider was counted first: the road user is the two-wheeler.
            rider = int(tids[mask][pair][int(np.argmax(ov))])
            self._relabel(rider, c.direction, c.class_name)
        return True

    def _relabel(self, tid: int, direction: str, class_name: str) -> None:
        """Count track ``tid``'s latest ``direction`` crossing as ``class_name``.

        Only inside the open bucket (a closed bucket's counts were final); the
        change goes out with this frame's bucket message.
        """
        for k in range(len(self.recent) - 1, -1, -1):
            old = self.recent[k]
            if old.tracker_id != tid or old.direction != direction:
                continue
            if self.bucket_start is None or old.ts < self.bucket_start:
                return
            counts = self.counts_in if direction == "in" else self.counts_out
            if counts.get(old.class_name, 0) <= 0:  # pragma: no cover - defensive
                return
            counts[old.class_name] -= 1
            if not counts[old.class_name]:
                del counts[old.class_name]
            counts[class_name] = counts.get(class_name, 0) + 1
            self.recent[k] = dataclasses.replace(old, class_name=class_name)
            self._relabeled = True
            return

    def _release(self, crossing: Crossing, cid: int) -> list[Event]:
        """Count a crossing; a wrong-way event when it breaks ``one_way``."""
        self.crossings.append(crossing)
        self.recent.append(crossing)
        if (
            self.rule.one_way is not None
            and crossing.direction != self.rule.one_way
            and cid in self.wrong_way_ids
        ):
            return [self._wrong_way(crossing)]
        return []

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


def _overlap_of_smaller(
    a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """``(N, M)`` intersection of ``(N, 4)`` and ``(M, 4)`` boxes over the smaller
    box's area (1 when one contains the other)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0.0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    smaller = np.minimum(area_a[:, None], area_b[None, :])
    return np.asarray(inter / np.maximum(smaller, 1e-9))
