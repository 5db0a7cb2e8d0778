"""Zone geometry for rules: polygon membership and directed line crossings.

Zones and lines are configured in relative 0-1 coordinates and turned into pixels
once the frame size is known (``from_relative``). Both tests are vectorised over
all anchors of a frame.

A :class:`LineZone` decides crossings with a hysteresis band: a track's *side* is
only updated when its anchor is farther than ``hysteresis_px`` from the line, so an
anchor jittering on the line never flips sides, and a crossing is one transition
between the two confirmed sides. Direction comes from the sign of that transition
relative to the configured "in" motion, not from the order of the line's endpoints.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["DIRECTION_VECTORS", "LineZone", "PolygonZone"]

log = logging.getLogger(__name__)

DIRECTION_VECTORS: dict[str, tuple[float, float]] = {
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
}


def _points(anchors: npt.ArrayLike) -> npt.NDArray[np.float64]:
    pts = np.asarray(anchors, dtype=np.float64)
    if pts.size == 0:
        return pts.reshape(0, 2)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"anchors must be (N, 2) points, got shape {pts.shape}")
    return pts


def _to_pixels(
    points: Sequence[tuple[float, float]], resolution_wh: tuple[int, int]
) -> npt.NDArray[np.float64]:
    w, h = resolution_wh
    if w < 1 or h < 1:
        raise ValueError(f"resolution must be positive, got {resolution_wh}")
    return np.asarray(points, dtype=np.float64).reshape(-1, 2) * np.array(
        [w, h], dtype=np.float64
    )


class PolygonZone:
    """A polygon in pixel coordinates with a vectorised point-in-polygon test.

    Args:
        polygon: ``(V, 2)`` vertices in pixels, ``V >= 3``.
    """

    def __init__(self, polygon: npt.ArrayLike) -> None:
        poly = np.asarray(polygon, dtype=np.float64)
        if poly.ndim != 2 or poly.shape[1] != 2 or poly.shape[0] < 3:
            raise ValueError(
                f"polygon must be (V>=3, 2) vertices, got shape {poly.shape}"
            )
        if not np.isfinite(poly).all():
            raise ValueError("polygon has NaN or infinite vertices")
        self.polygon = poly
        self._x0 = poly[:, 0]
        self._y0 = poly[:, 1]
        self._x1 = np.roll(poly[:, 0], -1)
        self._y1 = np.roll(poly[:, 1], -1)

    @classmethod
    def from_relative(
        cls,
        polygon: Sequence[tuple[float, float]],
        resolution_wh: tuple[int, int],
    ) -> PolygonZone:
        """Build from relative ``(x, y)`` vertices and the frame ``(width, height)``."""
        return cls(_to_pixels(polygon, resolution_wh))

    def trigger(self, anchors: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Which anchors lie inside the polygon (even-odd rule).

        Args:
            anchors: ``(N, 2)`` points ``(x, y)`` in pixels.

        Returns:
            ``(N,)`` bool mask.
        """
        pts = _points(anchors)
        if pts.shape[0] == 0:
            return np.zeros(0, dtype=bool)
        px = pts[:, 0:1]  # (N, 1) against (V,) edges -> (N, V)
        py = pts[:, 1:2]
        straddle = (self._y0 > py) != (self._y1 > py)
        dy = self._y1 - self._y0
        # Edges with dy == 0 never straddle; the guard only avoids a 0/0 warning.
        safe_dy = np.where(dy == 0, 1.0, dy)
        x_cross = self._x0 + (py - self._y0) * (self._x1 - self._x0) / safe_dy
        hits = straddle & (px < x_cross)
        return (np.count_nonzero(hits, axis=1) % 2) == 1


class LineZone:
    """A directed counting line with per-track side memory and hysteresis.

    Sides: ``+1`` is the side an object moving in the "in" direction ends up on,
    ``-1`` the other; ``0`` (in the band, or unknown) never changes a track's side.

    Args:
        start: ``(2,)`` line start in pixels.
        end: ``(2,)`` line end in pixels.
        in_vector: ``(2,)`` image-space motion that counts as "in" (need not be unit
            length; must not be parallel to the line).
        hysteresis_px: Distance from the line an anchor must exceed before its side
            is taken into account.
    """

    def __init__(
        self,
        start: npt.ArrayLike,
        end: npt.ArrayLike,
        in_vector: npt.ArrayLike,
        hysteresis_px: float = 0.0,
    ) -> None:
        self.start = np.asarray(start, dtype=np.float64).reshape(2)
        self.end = np.asarray(end, dtype=np.float64).reshape(2)
        seg = self.end - self.start
        self.length = float(math.hypot(seg[0], seg[1]))
        if self.length < 1e-6:
            raise ValueError("line start and end are the same point")
        if hysteresis_px < 0 or not math.isfinite(hysteresis_px):
            raise ValueError(f"hysteresis_px must be >= 0, got {hysteresis_px}")
        self.unit = seg / self.length
        normal = np.array([-self.unit[1], self.unit[0]])
        vin = np.asarray(in_vector, dtype=np.float64).reshape(2)
        dot = float(normal @ vin)
        if abs(dot) < 1e-9:
            raise ValueError("in direction is parallel to the line")
        # Orient the normal along the "in" motion: the endpoints' order is irrelevant.
        self.normal = normal if dot > 0 else -normal
        self.hysteresis_px = float(hysteresis_px)
        self._ids = np.zeros(0, dtype=np.int64)  # sorted tracker ids
        self._sides = np.zeros(0, dtype=np.int8)

    @classmethod
    def from_relative(
        cls,
        start: tuple[float, float],
        end: tuple[float, float],
        in_direction: Literal["up", "down", "left", "right"] | str,
        resolution_wh: tuple[int, int],
        hysteresis: float = 0.0,
    ) -> LineZone:
        """Build from relative endpoints, a named in-direction and the frame size.

        Args:
            start: Relative ``(x, y)`` start.
            end: Relative ``(x, y)`` end.
            in_direction: ``"up" | "down" | "left" | "right"``.
            resolution_wh: Frame ``(width, height)`` in pixels.
            hysteresis: Band half-width as a fraction of the frame diagonal.
        """
        if in_direction not in DIRECTION_VECTORS:
            raise ValueError(f"unknown in_direction {in_direction!r}")
        px = _to_pixels([start, end], resolution_wh)
        diag = math.hypot(*resolution_wh)
        return cls(px[0], px[1], DIRECTION_VECTORS[in_direction], hysteresis * diag)

    # ------------------------------------------------------------------ geometry
    def signed_distance(self, anchors: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``(N,)`` distance in pixels from the line, positive on the "in" side."""
        pts = _points(anchors)
        return (pts - self.start) @ self.normal

    def along(self, anchors: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``(N,)`` position along the segment: 0 at ``start``, 1 at ``end``."""
        pts = _points(anchors)
        return ((pts - self.start) @ self.unit) / self.length

    def sides(self, anchors: npt.ArrayLike) -> npt.NDArray[np.int8]:
        """``(N,)`` side per anchor: ``+1``/``-1`` beyond the band, ``0`` inside it."""
        d = self.signed_distance(anchors)
        h = self.hysteresis_px
        return np.where(d > h, 1, np.where(d < -h, -1, 0)).astype(np.int8)

    # ------------------------------------------------------------------ state
    def side_of(self, tracker_ids: npt.ArrayLike) -> npt.NDArray[np.int8]:
        """``(N,)`` remembered side per tracker id (0 when unknown)."""
        tids = np.asarray(tracker_ids, dtype=np.int64).reshape(-1)
        idx = np.searchsorted(self._ids, tids)
        idx_c = np.minimum(idx, max(len(self._ids) - 1, 0))
        known = (idx < len(self._ids)) & (
            self._ids[idx_c] == tids if len(self._ids) else False
        )
        out = np.zeros(tids.shape[0], dtype=np.int8)
        if len(self._ids):
            out[known] = self._sides[idx_c[known]]
        return out

    def set_sides(self, tracker_ids: npt.ArrayLike, sides: npt.ArrayLike) -> None:
        """Remember ``sides`` ``(N,)`` for ``tracker_ids`` ``(N,)`` (0 entries skipped)."""
        tids = np.asarray(tracker_ids, dtype=np.int64).reshape(-1)
        sd = np.asarray(sides, dtype=np.int8).reshape(-1)
        keep = sd != 0
        tids, sd = tids[keep], sd[keep]
        if tids.size == 0:
            return
        # New values win over old ones for the same id.
        stale = np.isin(self._ids, tids)
        ids = np.concatenate([self._ids[~stale], tids])
        sides_all = np.concatenate([self._sides[~stale], sd])
        order = np.argsort(ids, kind="stable")
        self._ids, self._sides = ids[order], sides_all[order]

    def forget(self, tracker_ids: npt.ArrayLike) -> None:
        """Drop the side memory of ``tracker_ids`` (removed tracks)."""
        tids = np.asarray(tracker_ids, dtype=np.int64).reshape(-1)
        if tids.size == 0 or self._ids.size == 0:
            return
        keep = ~np.isin(self._ids, tids)
        self._ids, self._sides = self._ids[keep], self._sides[keep]

    def reset(self) -> None:
        """Forget every track's side."""
        self._ids = np.zeros(0, dtype=np.int64)
        self._sides = np.zeros(0, dtype=np.int8)

    def __len__(self) -> int:
        return int(self._ids.size)

    def trigger(
        self, tracker_ids: npt.ArrayLike, anchors: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """Update track sides and report which tracks crossed this frame.

        A crossing is a change between the two confirmed sides (``-1 → +1`` is "in",
        ``+1 → -1`` is "out") whose anchor projects onto the segment. Anchors inside
        the hysteresis band leave the remembered side unchanged, so jitter around
        the line cannot produce a crossing.

        Args:
            tracker_ids: ``(N,)`` int tracker ids (unique).
            anchors: ``(N, 2)`` anchor points in pixels.

        Returns:
            ``(crossed_in, crossed_out)``: two ``(N,)`` bool masks.
        """
        tids = np.asarray(tracker_ids, dtype=np.int64).reshape(-1)
        pts = _points(anchors)
        if pts.shape[0] != tids.shape[0]:
            raise ValueError(
                f"tracker_ids ({tids.shape[0]}) and anchors ({pts.shape[0]}) differ"
            )
        if tids.size == 0:
            empty = np.zeros(0, dtype=bool)
            return empty, empty.copy()
        prev = self.side_of(tids)
        now = self.sides(pts)
        t = self.along(pts)
        within = (t >= 0.0) & (t <= 1.0)
        crossed_in = (prev == -1) & (now == 1) & within
        crossed_out = (prev == 1) & (now == -1) & within
        self.set_sides(tids, now)
        return crossed_in, crossed_out


def lookup_rows(
    ids: npt.NDArray[np.int64], tracker_ids: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
    """Find the rows of ``tracker_ids`` in an unsorted id column.

    Args:
        ids: ``(R,)`` unique ids of a state table.
        tracker_ids: ``(N,)`` ids to look up.

    Returns:
        ``(rows, found)``: ``(N,)`` row indices (valid only where ``found``) and an
        ``(N,)`` bool mask.
    """
    if ids.size == 0:
        n = tracker_ids.shape[0]
        return np.zeros(n, dtype=np.intp), np.zeros(n, dtype=bool)
    order = np.argsort(ids, kind="stable")
    pos = np.searchsorted(ids[order], tracker_ids)
    pos_c = np.minimum(pos, ids.size - 1)
    rows = order[pos_c]
    found = ids[rows] == tracker_ids
    return rows, found


def select_tracks(
    detections: object,
    class_ids: npt.NDArray[np.int64],
    anchor: str,
) -> tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
]:
    """Tracked rows of the wanted classes as plain arrays.

    Args:
        detections: A :class:`monitor.types.Detections` with ``tracker_id`` set.
        class_ids: ``(C,)`` class ids the rule watches.
        anchor: Anchor name (see :class:`monitor.types.Anchor`).

    Returns:
        ``(tracker_ids (N,), anchors (N, 2), class_ids (N,), boxes (N, 4))``.

    Raises:
        ValueError: ``detections`` has no ``tracker_id`` column or repeats an id.
    """
    from monitor.types import Detections

    if not isinstance(detections, Detections):
        raise ValueError(
            f"rules need monitor.types.Detections, got {type(detections).__name__}"
        )
    if len(detections) == 0:
        return (
            np.zeros(0, np.int64),
            np.zeros((0, 2), np.float64),
            np.zeros(0, np.int64),
            np.zeros((0, 4), np.float64),
        )
    if detections.tracker_id is None:
        raise ValueError("rules need tracked detections (tracker_id is None)")
    keep = np.isin(detections.class_id, class_ids)
    det = detections[keep]
    tids = np.asarray(det.tracker_id, dtype=np.int64)
    if np.unique(tids).size != tids.size:
        raise ValueError("tracker_id repeats within one frame")
    return (
        tids,
        det.anchors(anchor).astype(np.float64),
        det.class_id.copy(),
        det.xyxy.astype(np.float64),
    )


def select_births(
    detections: object, class_ids: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
    """First detections of the rows :func:`select_tracks` keeps, where known.

    The tracker reports a track from its ``min_confirm_hits``-th detection on and
    attaches its first detection (``data["birth_xyxy"]``, ``data["birth_mono"]``,
    see :mod:`monitor.tracker`), so rules can see where a new track was before.

    Args:
        detections: The :class:`monitor.types.Detections` given to
            :func:`select_tracks`.
        class_ids: ``(C,)`` the same class ids.

    Returns:
        ``(boxes (N, 4) px, mono (N,) s)`` aligned with :func:`select_tracks`'s
        rows, or ``None`` when the detections carry no births (another tracker, a
        test feeding plain tracks).
    """
    from monitor.types import Detections

    if not isinstance(detections, Detections):
        return None
    bx = detections.data.get("birth_xyxy")
    bt = detections.data.get("birth_mono")
    if bx is None or bt is None:
        return None
    keep = np.isin(detections.class_id, class_ids)
    return (
        np.asarray(bx, np.float64).reshape(-1, 4)[keep],
        np.asarray(bt, np.float64).reshape(-1)[keep],
    )
