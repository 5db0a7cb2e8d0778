"""Core data types that flow through every stage: Frame, Detections, Anchor.

``Detections`` is a vectorised container (struct of NumPy arrays) in the style of
``supervision.Detections``: every stage takes one and returns one, filtering is done
with boolean masks, and an instance with inconsistent shapes cannot be constructed.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Anchor", "ClassGroups", "Detections", "Frame", "anchor_points"]


class Anchor(enum.StrEnum):
    """Point of a box used to decide zone membership and line crossings."""

    CENTER = "center"
    BOTTOM_CENTER = "bottom_center"
    TOP_CENTER = "top_center"
    CENTER_LEFT = "center_left"
    CENTER_RIGHT = "center_right"


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded camera frame with its two clocks.

    Attributes:
        camera_id: Camera the frame came from.
        seq: Per-source frame counter; a gap means frames were dropped.
        ts: Wall-clock capture time, epoch seconds (use for event timestamps).
        mono: ``time.monotonic()`` at capture (use for all durations).
        image: ``(H, W, 3)`` uint8 BGR image.
    """

    camera_id: str
    seq: int
    ts: float
    mono: float
    image: npt.NDArray[np.uint8]

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, np.ndarray):
            raise TypeError(
                f"Frame.image must be a numpy array, got {type(img).__name__}"
            )
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(
                "Frame.image must be (H, W, 3) uint8 BGR, "
                f"got shape {img.shape} dtype {img.dtype}"
            )
        if img.shape[0] < 1 or img.shape[1] < 1:
            raise ValueError(f"Frame.image is empty: shape {img.shape}")

    @property
    def resolution_wh(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])


def anchor_points(
    xyxy: npt.NDArray[np.floating], anchor: Anchor | str = Anchor.BOTTOM_CENTER
) -> npt.NDArray[np.floating]:
    """``(N, 2)`` anchor points ``(x, y)`` of ``(N, 4)`` boxes, in their dtype."""
    a = Anchor(anchor)
    x1, y1, x2, y2 = (xyxy[:, i] for i in range(4))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    pts: tuple[npt.NDArray[Any], npt.NDArray[Any]]
    if a is Anchor.CENTER:
        pts = (cx, cy)
    elif a is Anchor.BOTTOM_CENTER:
        pts = (cx, y2)
    elif a is Anchor.TOP_CENTER:
        pts = (cx, y1)
    elif a is Anchor.CENTER_LEFT:
        pts = (x1, cy)
    else:
        pts = (x2, cy)
    return np.stack(pts, axis=1)


def _as_array(
    name: str, value: Any, dtype: npt.DTypeLike, ndim: int
) -> npt.NDArray[Any]:
    arr = np.asarray(value)
    if arr.ndim != ndim:
        raise ValueError(
            f"Detections.{name} must have {ndim} dims, got shape {arr.shape}"
        )
    try:
        out = arr.astype(dtype, copy=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Detections.{name} cannot be cast to {dtype}: {exc}") from exc
    return out


@dataclass(slots=True)
class Detections:
    """A set of N boxes as parallel NumPy arrays.

    Attributes:
        xyxy: ``(N, 4)`` float32 boxes in pixels, ``x1 <= x2``, ``y1 <= y2``.
        confidence: ``(N,)`` float32 scores in ``[0, 1]``.
        class_id: ``(N,)`` int64 COCO class ids.
        tracker_id: ``(N,)`` int64 track ids, or ``None`` before tracking.
        data: Extra per-row columns; each array's first dimension is N.
    """

    xyxy: npt.NDArray[np.float32]
    confidence: npt.NDArray[np.float32]
    class_id: npt.NDArray[np.int64]
    tracker_id: npt.NDArray[np.int64] | None = None
    data: dict[str, npt.NDArray[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy)
        if xyxy.size == 0:
            xyxy = xyxy.reshape(0, 4)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise ValueError(f"Detections.xyxy must be (N, 4), got shape {xyxy.shape}")
        self.xyxy = xyxy.astype(np.float32, copy=False)
        n = self.xyxy.shape[0]
        self.confidence = _as_array("confidence", self.confidence, np.float32, 1)
        self.class_id = _as_array("class_id", self.class_id, np.int64, 1)
        for name in ("confidence", "class_id"):
            arr = getattr(self, name)
            if arr.shape[0] != n:
                raise ValueError(
                    f"Detections.{name} must have length {n} (rows of xyxy), "
                    f"got {arr.shape[0]}"
                )
        if self.tracker_id is not None:
            self.tracker_id = _as_array("tracker_id", self.tracker_id, np.int64, 1)
            if self.tracker_id.shape[0] != n:
                raise ValueError(
                    f"Detections.tracker_id must have length {n}, "
                    f"got {self.tracker_id.shape[0]}"
                )
        for key, col in list(self.data.items()):
            col = np.asarray(col)
            if col.ndim == 0 or col.shape[0] != n:
                raise ValueError(
                    f"Detections.data[{key!r}] must have first dimension {n}, "
                    f"got shape {col.shape}"
                )
            self.data[key] = col
        if n and not np.isfinite(self.xyxy).all():
            raise ValueError("Detections.xyxy contains NaN or infinite values")

    # ------------------------------------------------------------------ factories
    @classmethod
    def empty(cls, with_tracker_id: bool = False) -> Detections:
        """Zero detections (optionally with an empty ``tracker_id`` column)."""
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros(0, np.float32),
            class_id=np.zeros(0, np.int64),
            tracker_id=np.zeros(0, np.int64) if with_tracker_id else None,
        )

    @classmethod
    def merge(cls, items: Iterable[Detections]) -> Detections:
        """Concatenate detections; ``tracker_id``/``data`` kept only if all have them."""
        parts = [d for d in items]
        if not parts:
            return cls.empty()
        with_tid = all(p.tracker_id is not None for p in parts)
        keys = set(parts[0].data)
        for p in parts[1:]:
            keys &= set(p.data)
        return cls(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            confidence=np.concatenate([p.confidence for p in parts]),
            class_id=np.concatenate([p.class_id for p in parts]),
            tracker_id=(
                np.concatenate([p.tracker_id for p in parts])  # type: ignore[misc]
                if with_tid
                else None
            ),
            data={k: np.concatenate([p.data[k] for p in parts]) for k in keys},
        )

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(
        self, index: int | slice | npt.NDArray[Any] | list[int]
    ) -> Detections:
        """Select rows by int, slice, boolean mask ``(N,)`` or index array."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        if isinstance(index, np.ndarray) and index.dtype == bool:
            if index.shape != (len(self),):
                raise IndexError(
                    f"boolean mask must have shape ({len(self)},), got {index.shape}"
                )
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            class_id=self.class_id[index],
            tracker_id=None if self.tracker_id is None else self.tracker_id[index],
            data={k: v[index] for k, v in self.data.items()},
        )

    def with_tracker_id(self, tracker_id: npt.ArrayLike) -> Detections:
        """Copy with ``tracker_id`` set (shape ``(N,)``)."""
        return Detections(
            xyxy=self.xyxy,
            confidence=self.confidence,
            class_id=self.class_id,
            tracker_id=np.asarray(tracker_id, dtype=np.int64),
            data=dict(self.data),
        )

    @property
    def area(self) -> npt.NDArray[np.float32]:
        """``(N,)`` box areas in square pixels."""
        wh = np.clip(self.xyxy[:, 2:] - self.xyxy[:, :2], 0, None)
        return (wh[:, 0] * wh[:, 1]).astype(np.float32)

    def anchors(
        self, anchor: Anchor | str = Anchor.BOTTOM_CENTER
    ) -> npt.NDArray[np.float32]:
        """``(N, 2)`` anchor points ``(x, y)`` in pixels."""
        return anchor_points(self.xyxy, anchor).astype(np.float32)

    def filter_classes(self, class_ids: Iterable[int]) -> Detections:
        """Keep rows whose ``class_id`` is in ``class_ids``."""
        return self[np.isin(self.class_id, np.fromiter(class_ids, dtype=np.int64))]

    def to_dict_rows(
        self, names: Mapping[int, str] | None = None
    ) -> list[dict[str, Any]]:
        """Plain rows for logging/JSON (not for the frame path)."""
        rows = []
        for i in range(len(self)):
            row: dict[str, Any] = {
                "xyxy": [round(float(v), 2) for v in self.xyxy[i]],
                "confidence": round(float(self.confidence[i]), 4),
                "class_id": int(self.class_id[i]),
            }
            if names is not None:
                row["class_name"] = names.get(
                    int(self.class_id[i]), str(self.class_id[i])
                )
            if self.tracker_id is not None:
                row["tracker_id"] = int(self.tracker_id[i])
            rows.append(row)
        return rows


class ClassGroups:
    """Class id -> class group id, for classes one object may be detected as in turn.

    A group's id is the smallest class id in it; a class in no group is its own.
    Ids the detector does not have map to themselves (never equal to a known
    class's group). Used by the tracker (a track may switch class only inside its
    group) and by the loitering rule's id-switch hand-over.

    Args:
        class_names: Detector class names, index == class id.
        groups: Groups of class names (names the detector lacks are ignored).
    """

    def __init__(
        self, class_names: Sequence[str], groups: Sequence[Sequence[str]]
    ) -> None:
        table = np.arange(len(class_names), dtype=np.int64)
        index = {n: i for i, n in enumerate(class_names)}
        for g in groups:
            ids = [index[n] for n in g if n in index]
            if ids:
                table[ids] = min(ids)
        self.table = table

    def __call__(self, cls: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """``(K,)`` group ids of ``(K,)`` class ids."""
        c = np.asarray(cls).astype(np.int64)
        g = self.table
        inside = (c >= 0) & (c < g.size)
        return np.where(inside, g[np.clip(c, 0, g.size - 1)], c)
