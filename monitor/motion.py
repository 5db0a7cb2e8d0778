"""Cheap per-camera motion detection on a small grey copy of the frame.

A running-average background on a ``width``-pixel-wide grey image (≈ 0.3 ms for a 720p
frame on one core) decides whether the detector needs to run at all and where. Global
brightness changes (lights switching, auto-exposure, clouds) are compensated before
differencing; a change over most of the image is reported as a scene/lighting change,
not as motion, and the background is re-learned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from config.schema import MotionConfig

__all__ = ["MotionDetector", "MotionResult", "shrink"]


@dataclass(frozen=True, slots=True)
class MotionResult:
    """Motion found in one frame.

    Attributes:
        boxes: ``(K, 4)`` float32 moving regions in original-frame pixels (xyxy).
        changed_frac: Fraction of (unmasked) pixels that changed, 0-1.
        scene_change: True when most of the image changed at once (lighting or a
            moved camera): boxes are empty and the background was re-learned.
    """

    boxes: npt.NDArray[np.float32]
    changed_frac: float
    scene_change: bool

    @property
    def any(self) -> bool:
        """Whether anything moved (or the whole scene changed)."""
        return bool(len(self.boxes)) or self.scene_change


def shrink(image: npt.NDArray[Any], width: int) -> npt.NDArray[Any]:
    """Downscale ``(H, W[, C])`` ``image`` to at most ``width`` pixels wide.

    Colour stays colour (resizing first is cheaper than converting the full frame to
    grey). Nearest-neighbour to 2x the target, then area averaging: 4 samples per
    pixel keep sensor noise low, at 0.15 ms on 720p against 1.5 ms for area averaging
    of the whole frame (at 5/s on 16 cameras that was ~10 % of a core). Used by the
    motion gate and the frame health checks.
    """
    h, w = image.shape[:2]
    sw = min(width, w)
    sh = max(1, round(h * sw / w))
    img = image
    if w > 2 * sw:
        img = cv2.resize(img, (2 * sw, 2 * sh), interpolation=cv2.INTER_NEAREST)
    return cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)


class MotionDetector:
    """Frame differencing against a running-average background.

    Args:
        cfg: Thresholds, small-image width and masks.
    """

    def __init__(self, cfg: MotionConfig) -> None:
        self.cfg = cfg
        self._bg: npt.NDArray[np.float32] | None = None
        self._mask: npt.NDArray[np.bool_] | None = None
        self._shape: tuple[int, int] | None = None  # original (H, W)
        self._kernel = np.ones((3, 3), np.uint8)
        # Per small-image pixel: time it started moving (NaN: not moving).
        self._since: npt.NDArray[np.float64] | None = None

    def reset(self) -> None:
        """Forget the background (e.g. after a reconnect or resolution change)."""
        self._since = None
        self._bg = None
        self._shape = None
        self._mask = None

    def _small(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        small = shrink(image, self.cfg.width)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        return cv2.GaussianBlur(grey, (3, 3), 0).astype(np.float32)

    def _build_mask(self, sh: int, sw: int) -> npt.NDArray[np.bool_]:
        keep = np.ones((sh, sw), np.uint8)
        for poly in self.cfg.mask:
            pts = np.round(np.asarray(poly, np.float32) * [sw - 1, sh - 1]).astype(
                np.int32
            )
            cv2.fillPoly(keep, [pts], 0)
        return keep.astype(bool)

    def update(
        self, image: npt.NDArray[np.uint8], mono: float | None = None
    ) -> MotionResult:
        """Compare ``image`` ``(H, W, 3)`` uint8 BGR with the background.

        Args:
            image: The frame.
            mono: Its monotonic time in seconds; enables ``absorb_after_s`` (pixels
                moving for longer are learnt at the normal rate: ghosts fade).

        Returns:
            Moving regions scaled to the original frame.
        """
        h, w = image.shape[:2]
        small = self._small(image)
        sh, sw = small.shape
        if self._bg is None or self._shape != (h, w) or self._bg.shape != small.shape:
            self._bg = small.copy()
            self._shape = (h, w)
            self._mask = self._build_mask(sh, sw)
            return MotionResult(np.zeros((0, 4), np.float32), 0.0, False)
        assert self._mask is not None
        bg = self._bg
        mask = self._mask
        n_valid = max(int(mask.sum()), 1)
        # Compensate a global gain change so auto-exposure is not "motion".
        m_cur = float(small[mask].mean()) if n_valid > 1 else float(small.mean())
        m_bg = float(bg[mask].mean()) if n_valid > 1 else float(bg.mean())
        gain = m_bg / m_cur if m_cur > 1.0 else 1.0
        diff = np.abs(small * gain - bg)
        moving = (diff > self.cfg.threshold) & mask
        changed_frac = float(moving.sum()) / n_valid
        if changed_frac > self.cfg.max_changed_frac:
            self._bg = small.copy()
            return MotionResult(np.zeros((0, 4), np.float32), changed_frac, True)
        # Learn the background where nothing moves; follow slowly where it does,
        # so a parked car or a person who stands still is absorbed over time.
        slow = moving
        if mono is not None and self.cfg.absorb_after_s > 0:
            if self._since is None or self._since.shape != moving.shape:
                self._since = np.full(moving.shape, np.nan)
            since = self._since
            since[~moving] = np.nan
            since[moving & np.isnan(since)] = mono
            # A pixel "moving" this long with nothing to track is most likely a
            # ghost of something that left; objects still there are tracked.
            slow = moving & (mono - since < self.cfg.absorb_after_s)
        a = np.where(slow, self.cfg.alpha * 0.1, self.cfg.alpha).astype(np.float32)
        bg += a * (small * gain - bg)
        if not moving.any():
            return MotionResult(np.zeros((0, 4), np.float32), changed_frac, False)
        blob = cv2.dilate(moving.astype(np.uint8), self._kernel, iterations=2)
        n, _, stats, _ = cv2.connectedComponentsWithStats(blob, connectivity=8)
        st = stats[1:]  # row 0 is the background component
        min_area = self.cfg.min_area_frac * sh * sw
        st = st[st[:, cv2.CC_STAT_AREA] >= min_area]
        if len(st) == 0:
            return MotionResult(np.zeros((0, 4), np.float32), changed_frac, False)
        sx, sy = w / sw, h / sh
        x, y = st[:, cv2.CC_STAT_LEFT], st[:, cv2.CC_STAT_TOP]
        bw, bh = st[:, cv2.CC_STAT_WIDTH], st[:, cv2.CC_STAT_HEIGHT]
        boxes = np.stack([x * sx, y * sy, (x + bw) * sx, (y + bh) * sy], axis=1)
        return MotionResult(boxes.astype(np.float32), changed_frac, False)
