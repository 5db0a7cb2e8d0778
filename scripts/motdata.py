"""MOT ground truth from the motmetrics wheel and a seeded detection-noise model.

Used by ``scripts/bench_tracking.py`` and ``scripts/bench_events.py`` so that every
tracker sees *identical* detections.

Ground truth: ``motmetrics/data/<name>/gt.txt`` (MOTChallenge CSV:
``frame, id, x, y, w, h, flag, class, visibility``; rows with ``flag == 0`` are
ignored). Both shipped sequences are 640x480 at 25 fps: TUD-Campus (71 frames) and
TUD-Stadtmitte (179 frames).

Noise model (:func:`noisy_detections`), applied per level with one seeded
``numpy.random.Generator`` so results are reproducible:

* **Missed detections** - per ground-truth track, a two-state Markov chain
  (seen/missed) whose stationary miss probability is ``miss_rate`` and whose mean
  miss-burst length is ``miss_burst`` frames: detectors miss objects for several
  frames in a row (occlusion, blur), not independently per frame.
* **Box jitter** - each corner coordinate moves by ``N(0, jitter * size)`` where size
  is the box width (x) or height (y); boxes are then clipped to the image and kept at
  least 2 px wide/high.
* **Confidence** - a kept detection scores ``N(0.80, 0.10)`` clipped to
  ``[0.5, 0.99]``; with probability ``low_score_rate`` it instead scores
  ``U(0.15, 0.5)`` (the partially occluded/blurred case ByteTrack's second stage is
  designed for).
* **False positives** - ``Poisson(fp_per_frame)`` boxes per frame with a size drawn
  from the sequence's ground-truth boxes, uniformly placed in the image, scoring
  ``U(0.1, 0.5)``, or ``U(0.5, 0.9)`` for one in four (confident clutter: a
  tracker that starts tracks from single detections pays for it).

Levels:

========  ======  =========  ==========  ==============  ============
level     jitter  miss_rate  miss_burst  low_score_rate  fp_per_frame
========  ======  =========  ==========  ==============  ============
easy      0.03    0.10       3           0.10            0.5
medium    0.06    0.20       4           0.20            1.0
hard      0.10    0.30       5           0.30            2.0
========  ======  =========  ==========  ==============  ============
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = [
    "LEVELS",
    "SEQUENCES",
    "NoiseLevel",
    "SeqInfo",
    "as_detections",
    "gt_path",
    "load_gt",
    "noisy_detections",
]


@dataclass(frozen=True)
class SeqInfo:
    """Static facts about a shipped sequence."""

    name: str
    width: int
    height: int
    fps: float


SEQUENCES: dict[str, SeqInfo] = {
    "TUD-Campus": SeqInfo("TUD-Campus", 640, 480, 25.0),
    "TUD-Stadtmitte": SeqInfo("TUD-Stadtmitte", 640, 480, 25.0),
}


@dataclass(frozen=True)
class NoiseLevel:
    """Parameters of the detection-noise model (see the module docstring)."""

    name: str
    jitter: float
    miss_rate: float
    miss_burst: float
    low_score_rate: float
    fp_per_frame: float


LEVELS: dict[str, NoiseLevel] = {
    "easy": NoiseLevel("easy", 0.03, 0.10, 3.0, 0.10, 0.5),
    "medium": NoiseLevel("medium", 0.06, 0.20, 4.0, 0.20, 1.0),
    "hard": NoiseLevel("hard", 0.10, 0.30, 5.0, 0.30, 2.0),
}


def gt_path(name: str) -> Path:
    """Path of ``gt.txt`` for a sequence shipped in the motmetrics wheel."""
    import motmetrics

    if name not in SEQUENCES:
        raise KeyError(f"unknown sequence {name!r}; known: {sorted(SEQUENCES)}")
    return Path(motmetrics.__file__).parent / "data" / name / "gt.txt"


def load_gt(name: str) -> dict[int, npt.NDArray[np.float64]]:
    """Ground truth per frame.

    Args:
        name: ``"TUD-Campus"`` or ``"TUD-Stadtmitte"``.

    Returns:
        ``{frame: (K, 5) array [id, x1, y1, x2, y2]}`` for every frame from 1 to the
        last annotated one (frames without objects map to a ``(0, 5)`` array).
    """
    raw = np.loadtxt(gt_path(name), delimiter=",", ndmin=2)
    raw = raw[raw[:, 6] != 0]
    frames = raw[:, 0].astype(int)
    rows = np.column_stack(
        [raw[:, 1], raw[:, 2], raw[:, 3], raw[:, 2] + raw[:, 4], raw[:, 3] + raw[:, 5]]
    )
    out: dict[int, npt.NDArray[np.float64]] = {}
    for f in range(1, int(frames.max()) + 1):
        out[f] = rows[frames == f]
    return out


def noisy_detections(
    gt: dict[int, npt.NDArray[np.float64]],
    level: str | NoiseLevel,
    seed: int = 0,
    size: tuple[int, int] = (640, 480),
) -> dict[int, npt.NDArray[np.float64]]:
    """Simulated detector output derived from ground truth.

    Args:
        gt: Output of :func:`load_gt`.
        level: ``"easy"``, ``"medium"``, ``"hard"`` or a :class:`NoiseLevel`.
        seed: Seed of the random generator (same seed, same detections).
        size: Image ``(width, height)`` used for clipping and false positives.

    Returns:
        ``{frame: (K, 6) array [x1, y1, x2, y2, score, gt_id]}``; ``gt_id`` is -1 for
        false positives (for analysis only; trackers must not see it).
    """
    lv = LEVELS[level] if isinstance(level, str) else level
    rng = np.random.default_rng(seed)
    w_img, h_img = size
    # Markov chain per gt id: P(miss -> seen) = 1/burst, P(seen -> miss) chosen so the
    # stationary miss probability equals miss_rate.
    p_recover = 1.0 / lv.miss_burst
    p_enter = (
        lv.miss_rate / (1.0 - lv.miss_rate) * p_recover if lv.miss_rate < 1 else 1.0
    )
    missed: dict[int, bool] = {}
    all_boxes = np.concatenate([g[:, 1:] for g in gt.values() if len(g)])
    all_wh = all_boxes[:, 2:] - all_boxes[:, :2]
    out: dict[int, npt.NDArray[np.float64]] = {}
    for f in sorted(gt):
        g = gt[f]
        ids = g[:, 0].astype(int)
        u = rng.random(len(g))
        keep = np.ones(len(g), dtype=bool)
        for i, tid in enumerate(ids):
            was = missed.get(tid, rng.random() < lv.miss_rate)
            now = (u[i] >= p_recover) if was else (u[i] < p_enter)
            missed[tid] = now
            keep[i] = not now
        boxes = g[keep, 1:].copy()
        wh = boxes[:, 2:] - boxes[:, :2]
        scale = np.concatenate([wh, wh], axis=1)
        boxes += rng.normal(0.0, lv.jitter, boxes.shape) * scale
        score = np.clip(rng.normal(0.80, 0.10, len(boxes)), 0.5, 0.99)
        low = rng.random(len(boxes)) < lv.low_score_rate
        score[low] = rng.uniform(0.15, 0.5, int(low.sum()))
        tp = np.column_stack([boxes, score, ids[keep].astype(float)])
        n_fp = rng.poisson(lv.fp_per_frame)
        fwh = all_wh[rng.integers(0, len(all_wh), n_fp)]
        fxy = rng.uniform(0.0, 1.0, (n_fp, 2)) * (np.array([w_img, h_img]) - fwh)
        fscore = np.where(
            rng.random(n_fp) < 0.25,
            rng.uniform(0.5, 0.9, n_fp),
            rng.uniform(0.1, 0.5, n_fp),
        )
        fp = np.column_stack([fxy, fxy + fwh, fscore, np.full(n_fp, -1.0)])
        dets = np.concatenate([tp, fp]) if n_fp else tp
        dets[:, [0, 2]] = np.clip(dets[:, [0, 2]], 0, w_img)
        dets[:, [1, 3]] = np.clip(dets[:, [1, 3]], 0, h_img)
        dets[:, 2] = np.maximum(dets[:, 2], dets[:, 0] + 2.0)
        dets[:, 3] = np.maximum(dets[:, 3], dets[:, 1] + 2.0)
        out[f] = dets
    return out


def as_detections(rows: npt.NDArray[np.float64], class_id: int = 0):  # type: ignore[no-untyped-def]
    """``(K, >=5)`` rows ``[x1, y1, x2, y2, score, ...]`` as ``monitor.types.Detections``."""
    from monitor.types import Detections

    return Detections(
        xyxy=rows[:, :4],
        confidence=rows[:, 4],
        class_id=np.full(len(rows), class_id, dtype=np.int64),
    )
