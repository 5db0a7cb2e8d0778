"""Decide when and where the detector runs: motion gating and region detection.

Frigate's idea, adapted: rather than letterboxing the whole frame on every sampled
frame, detect on a few square crops around motion and around where tracked objects are
expected, each about the model's input size (so small objects keep their pixels), and
refresh with a full-frame pass every ``full_frame_interval_s`` so objects that stand
still are not lost. No motion and no active tracks → no detector call at all.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from config.schema import GatingConfig
from monitor.motion import MotionDetector, MotionResult
from monitor.nms import batched_nms
from monitor.types import Detections, Frame
from monitor.zones import lookup_rows

__all__ = [
    "DetectionGate",
    "GateDecision",
    "Plan",
    "detect_plan",
    "plan_regions",
]


class Plan(enum.StrEnum):
    """What to do with one sampled frame."""

    SKIP = "skip"  # nothing moves, nothing tracked: predict-only tracker step
    FULL = "full"  # whole frame
    REGIONS = "regions"  # crops only


@dataclass(frozen=True, slots=True)
class GateDecision:
    """The gate's answer for one frame.

    Attributes:
        plan: skip / full / regions.
        regions: ``(R, 4)`` int32 xyxy crops in frame pixels (``plan == REGIONS``).
        motion: The motion result the decision was based on (None in ``full`` mode).
        reason: Short reason for logs and benchmarks.
    """

    plan: Plan
    regions: npt.NDArray[np.int32]
    motion: MotionResult | None
    reason: str


def _square_regions(
    boxes: npt.NDArray[np.float32],
    frame_wh: tuple[int, int],
    side_min: int,
    margin: float,
) -> npt.NDArray[np.float32]:
    """One square region per box: at least ``side_min``, box + margin, inside the frame.

    Args:
        boxes: ``(K, 4)`` xyxy.
        frame_wh: Frame ``(W, H)``.
        side_min: Minimum square side in pixels (the model input size).
        margin: Fraction of the box size added around it.

    Returns:
        ``(K, 4)`` float32 xyxy squares (clamped to the frame; a side larger than the
        frame's short side becomes a full-height/width band).
    """
    w, h = frame_wh
    bw = boxes[:, 2] - boxes[:, 0]
    bh = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(np.maximum(bw, bh) * (1 + 2 * margin), side_min)
    side_x = np.minimum(side, w)
    side_y = np.minimum(side, h)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    x1 = np.clip(cx - side_x / 2, 0, w - side_x)
    y1 = np.clip(cy - side_y / 2, 0, h - side_y)
    return np.stack([x1, y1, x1 + side_x, y1 + side_y], axis=1).astype(np.float32)


def _overlap_matrix(r: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
    ix = np.minimum(r[:, None, 2], r[None, :, 2]) - np.maximum(
        r[:, None, 0], r[None, :, 0]
    )
    iy = np.minimum(r[:, None, 3], r[None, :, 3]) - np.maximum(
        r[:, None, 1], r[None, :, 1]
    )
    ov = (ix > 0) & (iy > 0)
    np.fill_diagonal(ov, False)
    return ov


def plan_regions(
    boxes: npt.NDArray[np.float32],
    frame_wh: tuple[int, int],
    side_min: int,
    *,
    margin: float = 0.25,
    max_regions: int = 4,
) -> npt.NDArray[np.int32]:
    """Merge boxes of interest into at most ``max_regions`` square crops.

    Overlapping squares are merged into the square covering both until none overlap;
    if more than ``max_regions`` remain, the closest pairs are merged.

    Args:
        boxes: ``(K, 4)`` xyxy boxes of interest (motion, predicted tracks).
        frame_wh: Frame ``(W, H)``.
        side_min: Minimum crop side (the detector's input size).
        margin: Fraction of each box's size added around it.
        max_regions: Upper bound on the number of crops.

    Returns:
        ``(R, 4)`` int32 xyxy crops, ``R <= max_regions`` (``R = 0`` for no boxes).
    """
    if len(boxes) == 0:
        return np.zeros((0, 4), np.int32)
    regions = _square_regions(np.asarray(boxes, np.float32), frame_wh, side_min, margin)
    # Merging is a loop over regions (a handful), not over objects.
    while len(regions) > 1:
        ov = _overlap_matrix(regions)
        if ov.any():
            i, j = np.argwhere(ov)[0]
        elif len(regions) > max_regions:
            c = (regions[:, :2] + regions[:, 2:]) / 2
            d = np.linalg.norm(c[:, None] - c[None, :], axis=2)
            np.fill_diagonal(d, np.inf)
            i, j = np.unravel_index(np.argmin(d), d.shape)
        else:
            break
        union = np.concatenate([regions[i, :2].clip(max=regions[j, :2]),
                                np.maximum(regions[i, 2:], regions[j, 2:])])[None]  # fmt: skip
        merged = _square_regions(union, frame_wh, side_min, 0.0)
        keep = np.ones(len(regions), bool)
        keep[[i, j]] = False
        regions = np.concatenate([regions[keep], merged])
    return np.round(regions).astype(np.int32)


def detect_plan(
    detector: Any, frame: Frame, decision: GateDecision, nms_iou: float = 0.5
) -> Detections | None:
    """Run the detector as ``decision`` says.

    Returns:
        Detections in frame pixels, or None for ``Plan.SKIP`` (predict-only step).
    """
    if decision.plan is Plan.SKIP:
        return None
    if decision.plan is Plan.FULL or len(decision.regions) == 0:
        return detector.detect(frame.image)  # type: ignore[no-any-return]
    img = frame.image
    crops = [img[y1:y2, x1:x2] for x1, y1, x2, y2 in decision.regions]
    parts = detector.detect_batch(crops)
    shifted = []
    for (x1, y1, _, _), d in zip(decision.regions, parts, strict=True):
        if len(d):
            d = Detections(
                xyxy=d.xyxy + np.array([x1, y1, x1, y1], np.float32),
                confidence=d.confidence,
                class_id=d.class_id,
            )
        shifted.append(d)
    merged = Detections.merge(shifted)
    if len(decision.regions) > 1 and len(merged) > 1:
        merged = merged[
            batched_nms(merged.xyxy, merged.confidence, merged.class_id, nms_iou)
        ]
    return merged


class DetectionGate:
    """Per-camera decision: skip, full frame, or regions.

    Args:
        cfg: Gating config.
        motion: The camera's motion detector.
        side_min: Detector input size in pixels (minimum crop side).
        areas_rel: ``(A, 4)`` relative xyxy boxes (0-1) of the rules' zones and lines;
            with ``cfg.restrict_to_rules`` only these areas are ever detected.
    """

    def __init__(
        self,
        cfg: GatingConfig,
        motion: MotionDetector,
        side_min: int,
        areas_rel: npt.NDArray[np.float32] | None = None,
    ) -> None:
        self.cfg = cfg
        self.motion = motion
        self.side_min = side_min
        self._last_full: float | None = None
        self._last_check: float | None = None
        self._forget_stationary()
        areas = np.zeros((0, 4), np.float32) if areas_rel is None else areas_rel
        m = cfg.rule_margin
        margin = np.array([-m, -m, m, m], np.float32)
        self.areas_rel = np.clip(
            np.asarray(areas, np.float32).reshape(-1, 4) + margin, 0.0, 1.0
        )

    def reset(self) -> None:
        """Forget timing and background (e.g. after a reconnect)."""
        self._last_full = None
        self._last_check = None
        self._forget_stationary()
        self.motion.reset()

    def _forget_stationary(self) -> None:
        # Per tracked id: reference box and the time it last moved away from it.
        # Rows are rebuilt from each frame's tracks, so removed ids drop out.
        self._st_ids = np.zeros(0, np.int64)
        self._st_box = np.zeros((0, 4), np.float64)
        self._st_since = np.zeros(0, np.float64)

    def _active_tracks(
        self, tracked: Detections | None, mono: float
    ) -> Detections | None:
        """The tracks that should keep the detector running on this frame.

        A track whose box centre has stayed within 10 % of its size of a reference
        position for ``stationary_after_s`` is stationary: it only asks for a
        detection every ``stationary_check_s`` (so the tracker keeps it), not on
        every sample. Moving tracks always count.

        Args:
            tracked: ``(T,)`` tracks of the previous step (``tracker_id`` set).
            mono: This frame's monotonic time, seconds.

        Returns:
            The subset of ``tracked`` that counts as activity (or ``tracked``).
        """
        if (
            tracked is None
            or not len(tracked)
            or tracked.tracker_id is None
            or self.cfg.stationary_after_s <= 0
        ):
            self._forget_stationary()
            return tracked
        ids = np.asarray(tracked.tracker_id, np.int64)
        box = np.asarray(tracked.xyxy, np.float64)
        since = np.full(len(ids), mono)
        ref = box.copy()
        rows, known = lookup_rows(self._st_ids, ids)
        if known.any():
            src = rows[known]
            old = self._st_box[src]
            size = np.maximum(old[:, 2:] - old[:, :2], 1.0)
            shift = np.abs(
                (box[known, :2] + box[known, 2:]) - (old[:, :2] + old[:, 2:])
            ) / (2.0 * size)
            still = (shift < 0.1).all(axis=1)
            kidx = np.flatnonzero(known)
            ref[kidx[still]] = old[still]
            since[kidx[still]] = self._st_since[src[still]]
        self._st_ids, self._st_box, self._st_since = ids, ref, since
        stationary = mono - since >= self.cfg.stationary_after_s
        if not stationary.any():
            return tracked
        check_due = (
            self._last_check is None
            or mono - self._last_check >= self.cfg.stationary_check_s
        )
        if check_due:
            self._last_check = mono
            return tracked
        return tracked[~stationary]

    def update(self, frame: Frame, tracked: Detections | None) -> GateDecision:
        """Decide for ``frame`` given the boxes currently tracked (``(T, 4)``)."""
        empty = np.zeros((0, 4), np.int32)
        if self.cfg.mode == "full":
            return GateDecision(Plan.FULL, empty, None, "mode=full")
        m = self.motion.update(frame.image, frame.mono)
        tracked = self._active_tracks(tracked, frame.mono)
        due = (
            self._last_full is None
            or frame.mono - self._last_full >= self.cfg.full_frame_interval_s
        )
        if (
            self.cfg.mode == "regions"
            and self.cfg.restrict_to_rules
            and len(self.areas_rel)
        ):
            return self._rule_areas(frame, tracked, m, due)
        if due or m.scene_change:
            self._last_full = frame.mono
            return GateDecision(
                Plan.FULL, empty, m, "refresh" if due else "scene-change"
            )
        has_tracks = tracked is not None and len(tracked) > 0
        if not len(m.boxes) and not has_tracks:
            return GateDecision(Plan.SKIP, empty, m, "idle")
        if self.cfg.mode == "motion":
            return GateDecision(Plan.FULL, empty, m, "motion")
        boxes = m.boxes
        if has_tracks:
            assert tracked is not None
            boxes = (
                np.concatenate([boxes, tracked.xyxy]) if len(boxes) else tracked.xyxy
            )
        w, h = frame.resolution_wh
        regions = plan_regions(
            boxes, (w, h), self.side_min,
            margin=self.cfg.region_margin, max_regions=self.cfg.max_regions,
        )  # fmt: skip
        if self._full_pass_instead(regions, w, h):
            self._last_full = frame.mono
            return GateDecision(Plan.FULL, empty, m, "regions-too-large")
        return GateDecision(Plan.REGIONS, regions, m, "regions")

    def _full_pass_instead(
        self, regions: npt.NDArray[np.int32], w: int, h: int
    ) -> bool:
        """Whether one full-frame pass should replace these crops.

        One crop costs one inference, as the full frame does, so it is kept whenever
        the detector sees it at least ``min_region_zoom`` x larger than the
        letterboxed frame (a counting line across a 1280x720 bridge: a 900x720 crop,
        1.4x: YOLOX-Nano then finds cars it scores below the tracker's threshold in
        the full frame). Several crops cost one inference each: they are kept while
        they cover less than ``max_region_frac`` of the frame.

        Args:
            regions: ``(R, 4)`` int32 xyxy crops, R >= 1.
            w: Frame width.
            h: Frame height.
        """
        size = (regions[:, 2:] - regions[:, :2]).astype(np.float64)
        if len(regions) == 1:
            zoom = max(w, h) / max(float(size[0].max()), 1.0)
            return zoom < self.cfg.min_region_zoom
        covered = float(size.prod(axis=1).sum())
        return covered >= self.cfg.max_region_frac * w * h

    def _rule_areas(
        self, frame: Frame, tracked: Detections | None, m: MotionResult, due: bool
    ) -> GateDecision:
        """Crops around the rule areas that show motion or hold tracks (all on refresh)."""
        w, h = frame.resolution_wh
        areas = self.areas_rel * np.array([w, h, w, h], np.float32)
        if due or m.scene_change:
            self._last_full = frame.mono
            active = np.ones(len(areas), bool)
            reason = "refresh" if due else "scene-change"
        else:
            boxes = m.boxes
            if tracked is not None and len(tracked):
                boxes = (
                    np.concatenate([boxes, tracked.xyxy])
                    if len(boxes)
                    else tracked.xyxy
                )
            if not len(boxes):
                return GateDecision(Plan.SKIP, np.zeros((0, 4), np.int32), m, "idle")
            # Watch the whole crop an area would get, not just the area: an object
            # approaching a line must be tracked before it reaches it, or it is
            # first seen already across and never counted.
            watch = _square_regions(areas, (w, h), self.side_min, 0.0)
            ix = np.minimum(watch[:, None, 2], boxes[None, :, 2]) - np.maximum(
                watch[:, None, 0], boxes[None, :, 0]
            )
            iy = np.minimum(watch[:, None, 3], boxes[None, :, 3]) - np.maximum(
                watch[:, None, 1], boxes[None, :, 1]
            )
            active = np.asarray(((ix > 0) & (iy > 0)).any(axis=1), bool)
            reason = "rule-areas"
        if not active.any():
            return GateDecision(Plan.SKIP, np.zeros((0, 4), np.int32), m, "idle-areas")
        regions = plan_regions(
            areas[active],
            (w, h),
            self.side_min,
            margin=0.0,
            max_regions=self.cfg.max_regions,
        )
        if self._full_pass_instead(regions, w, h):
            return GateDecision(Plan.FULL, np.zeros((0, 4), np.int32), m, reason)
        return GateDecision(Plan.REGIONS, regions, m, reason)
