"""IoU cost and optimal one-to-one assignment, vectorised."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

__all__ = ["iou_cxcywh_xyxy", "iou_matrix", "match"]

_EMPTY = np.zeros(0, dtype=np.intp)


def iou_matrix(
    a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]
) -> npt.NDArray[np.float64]:
    """Pairwise intersection over union.

    Args:
        a: ``(N, 4)`` boxes ``x1, y1, x2, y2``.
        b: ``(M, 4)`` boxes ``x1, y1, x2, y2``.

    Returns:
        ``(N, M)`` IoU in ``[0, 1]`` (0 for degenerate boxes).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    # Column-wise (N,1) vs (M,) broadcasting: four 2-D ops beat one 3-D op here.
    ax1, ay1, ax2, ay2 = a[:, 0:1], a[:, 1:2], a[:, 2:3], a[:, 3:4]
    bx1, by1, bx2, by2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    iw = np.minimum(ax2, bx2) - np.maximum(ax1, bx1)
    ih = np.minimum(ay2, by2) - np.maximum(ay1, by1)
    np.maximum(iw, 0.0, out=iw)
    np.maximum(ih, 0.0, out=ih)
    inter = iw * ih
    union = ((ax2 - ax1) * (ay2 - ay1)) + ((bx2 - bx1) * (by2 - by1)) - inter
    # union is 0 only when both boxes are empty (then inter is 0 too): IoU 0
    return inter / np.maximum(union, 1e-12)


def iou_cxcywh_xyxy(
    a: npt.NDArray[np.float64], b: npt.NDArray[np.floating]
) -> npt.NDArray[np.float64]:
    """Pairwise IoU of centre/size boxes against corner boxes.

    Same result as :func:`iou_matrix` on the converted boxes, without building the
    ``(N, 4)`` corner array first (the tracker's predicted boxes are centre/size).

    Args:
        a: ``(N, 4)`` float64 boxes ``cx, cy, w, h`` (e.g. Kalman means).
        b: ``(M, 4)`` boxes ``x1, y1, x2, y2``.

    Returns:
        ``(N, M)`` IoU in ``[0, 1]`` (0 for degenerate boxes).
    """
    hw = 0.5 * a[:, 2:3]
    hh = 0.5 * a[:, 3:4]
    ax1 = a[:, 0:1] - hw
    ax2 = a[:, 0:1] + hw
    ay1 = a[:, 1:2] - hh
    ay2 = a[:, 1:2] + hh
    b = np.asarray(b, dtype=np.float64)
    bx1, by1, bx2, by2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    iw = np.minimum(ax2, bx2)
    iw -= np.maximum(ax1, bx1)
    ih = np.minimum(ay2, by2)
    ih -= np.maximum(ay1, by1)
    np.maximum(iw, 0.0, out=iw)
    np.maximum(ih, 0.0, out=ih)
    iw *= ih  # intersection
    union = (a[:, 2:3] * a[:, 3:4]) + ((bx2 - bx1) * (by2 - by1))
    union -= iw
    np.maximum(union, 1e-12, out=union)
    iw /= union
    return iw


def match(
    score: npt.NDArray[np.float64], min_score: float, inplace: bool = False
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Maximum-total-score one-to-one matching, keeping pairs with ``score >= min_score``.

    Pairs below ``min_score`` are zeroed before solving (not just filtered
    afterwards), so a weak pair can never displace a valid one.

    Args:
        score: ``(N, M)`` similarity (IoU; 0 where a pair is not allowed).
        min_score: Smallest similarity accepted as a match (> 0).
        inplace: Zero the invalid pairs in ``score`` itself (the caller passes a
            scratch copy) instead of allocating a new matrix.

    Returns:
        ``rows (K,)`` and ``cols (K,)`` index arrays of matched pairs.
    """
    if score.size == 0:
        return _EMPTY, _EMPTY
    # Invalid pairs become 0 before solving; on these small matrices one solver call
    # (a few microseconds) is cheaper than any pre-check for a trivial assignment.
    if inplace:
        sub = score
        sub[sub < min_score] = 0.0
    else:
        sub = np.where(score >= min_score, score, 0.0)
    r, c = linear_sum_assignment(sub, maximize=True)
    keep = sub[r, c] > 0.0
    return r[keep], c[keep]
