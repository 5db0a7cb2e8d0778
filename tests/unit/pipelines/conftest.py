"""Frame-by-frame simulation helpers for rule tests.

Frames are 100×100 px, so relative zone/line coordinates × 100 are pixels. An
object is ``(tracker_id, x, y)`` or ``(tracker_id, x, y, class_id)`` where ``(x, y)``
is its bottom-centre anchor; its box is 8×10 px above that point.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from config.schema import ZoneConfig
from monitor.events import Event
from monitor.types import Detections, Frame

W, H = 100, 100
IMAGE = np.zeros((H, W, 3), np.uint8)
#: The zone of the loitering, crowding and schedule tables: the square 20..80 px.
ZONE = ZoneConfig(id="z", polygon=((0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8)))
#: The loitering rule of test_loitering.py and test_loitering_restart.py.
LOITER_BASE = dict(
    id="r",
    zone="z",
    min_dwell_s=10,
    entry_s=1,
    grace_s=3,
    update_s=100,
    cooldown_s=20,
    reid_distance=0.05,  # 7 px on the 141 px diagonal
)
TS0 = 1_780_000_000.0  # 2026-05-28 UTC, an arbitrary wall-clock origin
MONO0 = 5_000.0


def make_dets(
    objs: Sequence[Sequence[float]],
    births: Mapping[int, tuple[float, float, float]] | None = None,
) -> Detections:
    """Tracked detections from ``(tid, x, y[, class_id])`` rows (anchor = bottom centre).

    ``births``: ``{tid: (x, y, t)}``, the anchor and time (s after ``MONO0``) of the
    track's first detection, as the tracker reports them in ``data["birth_xyxy"]``
    and ``data["birth_mono"]``; rows without one are born where they are now.
    """
    if not objs:
        return Detections.empty(with_tracker_id=True)
    arr = np.array([list(o) + [0] * (4 - len(o)) for o in objs], dtype=np.float64)
    x, y = arr[:, 1], arr[:, 2]
    xyxy = np.stack([x - 4, y - 10, x + 4, y], axis=1)
    data = {}
    if births is not None:
        bx = xyxy.copy()
        bt = np.full(len(objs), -np.inf)
        for i, tid in enumerate(arr[:, 0].astype(int).tolist()):
            if tid in births:
                x0, y0, t0 = births[tid]
                bx[i] = (x0 - 4, y0 - 10, x0 + 4, y0)
                bt[i] = MONO0 + t0
        data = {"birth_xyxy": bx, "birth_mono": bt}
    return Detections(
        xyxy=xyxy,
        confidence=np.full(len(objs), 0.9),
        class_id=arr[:, 3].astype(np.int64),
        tracker_id=arr[:, 0].astype(np.int64),
        data=data,
    )


class Sim:
    """Feeds timed frames to pipelines and records ``(t, event)`` pairs."""

    def __init__(
        self,
        pipelines: Iterable[Any],
        ts0: float = TS0,
        image: np.ndarray = IMAGE,
        mono0: float = MONO0,
    ) -> None:
        self.pipelines = list(pipelines)
        self.ts0 = ts0
        self.mono0 = mono0
        self.image = image
        self.seq = 0
        self.log: list[tuple[float, Event]] = []

    def step(
        self,
        t: float,
        objs: Sequence[Sequence[float]] = (),
        removed: Sequence[int] = (),
        births: Mapping[int, tuple[float, float, float]] | None = None,
    ) -> list[Event]:
        self.seq += 1
        frame = Frame("cam", self.seq, self.ts0 + t, self.mono0 + t, self.image)
        dets = make_dets(objs, births)
        rm = np.asarray(removed, dtype=np.int64)
        out: list[Event] = []
        for p in self.pipelines:
            out.extend(p.update(frame, dets, rm))
        self.log.extend((t, e) for e in out)
        return out

    def run(self, timeline: Iterable[tuple]) -> list[tuple[float, Event]]:
        """Run ``(t, objs[, removed])`` rows; return all ``(t, event)`` so far."""
        for row in timeline:
            self.step(*row)
        return self.log


def ticks(t0: float, t1: float, dt: float = 0.5) -> list[float]:
    """Frame times from t0 (inclusive) to t1 (exclusive)."""
    n = int(round((t1 - t0) / dt))
    return [round(t0 + i * dt, 6) for i in range(n)]


@pytest.fixture
def rt() -> SimpleNamespace:
    """Rule-test toolkit (module-level tables import constants from
    ``tests.unit.pipelines.conftest`` instead)."""
    return SimpleNamespace(
        Sim=Sim, dets=make_dets, ticks=ticks, TS0=TS0, MONO0=MONO0, W=W, H=H
    )
