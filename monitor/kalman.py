"""Batched constant-velocity Kalman filter for boxes, with time-varying steps.

The state per track is ``[cx, cy, w, h, vcx, vcy, vw, vh]`` (pixels, pixels per
second). Process and measurement noise are diagonal and the motion model moves each
coordinate only with its own velocity, so the 8x8 covariance is block diagonal: four
independent 2x2 blocks ``[[pp, pv], [pv, vv]]``, one per coordinate. Storing just the
three distinct entries per block turns every predict/update into a handful of
element-wise NumPy operations over all tracks at once, with no matrix products and no
per-track Python code; the result is identical to the full 8x8 filter.

Noise is scaled by box size (as in SORT/ByteTrack/BoT-SORT: bigger boxes move more
pixels) and the process noise grows with the elapsed time ``dt`` so that frames
arriving at irregular intervals, or predict-only steps, are handled exactly.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "KalmanParams",
    "initiate",
    "predict",
    "update",
    "xyxy_to_cxcywh",
]

F64 = npt.NDArray[np.float64]


class KalmanParams:
    """Noise levels, relative to box size.

    Attributes:
        std_pos: Process noise of the position per second of elapsed time, as a
            fraction of box width (x, w) or height (y, h).
        std_vel: Process noise of the velocity per second, same scaling.
        std_meas: Measurement noise of a detector box, same scaling: a float, or a
            ``(4,)`` array per coordinate ``[cx, cy, w, h]`` (the tracker learns
            one from its detector's boxes).
        init_vel_std: Initial velocity uncertainty (per second, same scaling).
    """

    __slots__ = ("init_vel_std", "std_meas", "std_pos", "std_vel")

    def __init__(
        self,
        std_pos: float = 0.05 * 5.0,
        std_vel: float = 0.00625 * 25.0,
        std_meas: float | F64 = 0.05,
        init_vel_std: float = 2.0,
    ) -> None:
        # Defaults are ByteTrack's per-frame values (1/20, 1/160) converted to a
        # per-second rate at a 25 fps reference; the variance then scales with dt.
        # init_vel_std is a speed a new track may plausibly have, in box sizes per
        # second (0.5 until #5/#8: at 5 detections/s it kept a new car's velocity
        # near zero for several steps; 2.0 learns most of it from the second
        # detection, docs/tracking.md "Counting at low detection rates").
        self.std_pos = std_pos
        self.std_vel = std_vel
        self.std_meas = std_meas
        self.init_vel_std = init_vel_std


def xyxy_to_cxcywh(xyxy: npt.NDArray[np.floating]) -> F64:
    """Convert ``(N, 4)`` corner boxes to ``(N, 4)`` centre/size boxes."""
    b = np.asarray(xyxy, dtype=np.float64)
    out = np.empty_like(b)
    out[:, 2:] = b[:, 2:] - b[:, :2]
    out[:, :2] = b[:, :2] + 0.5 * out[:, 2:]
    return out


def _scale(size: F64) -> F64:
    """``(N, 4)`` noise scale per coordinate: width for x and w, height for y and h."""
    return np.concatenate([size, size], axis=1)


def initiate(z: F64, p: KalmanParams) -> tuple[F64, F64]:
    """Start tracks from first measurements.

    Args:
        z: ``(N, 4)`` measured ``[cx, cy, w, h]``.
        p: Noise parameters.

    Returns:
        ``mean (N, 8)`` with zero velocity and ``cov (N, 3, 4)``: rows are the
        position variance, position/velocity covariance and velocity variance of
        each of the four coordinates.
    """
    n = z.shape[0]
    mean = np.zeros((n, 8))
    mean[:, :4] = z
    s = _scale(z[:, 2:])
    cov = np.zeros((n, 3, 4))
    cov[:, 0] = (2.0 * p.std_meas * s) ** 2
    cov[:, 2] = (p.init_vel_std * s) ** 2
    return mean, cov


def predict(mean: F64, cov: F64, dt: float, p: KalmanParams) -> None:
    """Advance all tracks by ``dt`` seconds, in place.

    Args:
        mean: ``(N, 8)`` states, modified in place.
        cov: ``(N, 3, 4)`` block covariances, modified in place.
        dt: Elapsed seconds (``>= 0``); irregular steps are fine.
        p: Noise parameters.
    """
    if dt <= 0.0 or mean.shape[0] == 0:
        return
    mean[:, :4] += dt * mean[:, 4:]
    # a box cannot shrink below a pixel, whatever its size velocity says
    np.maximum(mean[:, 2:4], 1.0, out=mean[:, 2:4])
    s2 = _scale(mean[:, 2:4])
    s2 *= s2
    pp, pv, vv = cov[:, 0], cov[:, 1], cov[:, 2]
    # P <- F P F^T + Q per 2x2 block, F = [[1, dt], [0, 1]]
    tmp = pv * 2.0
    tmp += vv * dt
    tmp *= dt
    tmp += s2 * (p.std_pos**2 * dt)
    pp += tmp
    pv += vv * dt
    s2 *= p.std_vel**2 * dt
    vv += s2


def update(mean: F64, cov: F64, z: F64, p: KalmanParams) -> None:
    """Correct tracks with their matched measurements, in place.

    Args:
        mean: ``(M, 8)`` states of the matched tracks (a copy; write it back).
        cov: ``(M, 3, 4)`` their covariances (a copy; write it back).
        z: ``(M, 4)`` matched ``[cx, cy, w, h]`` measurements.
        p: Noise parameters.
    """
    r = (p.std_meas * _scale(z[:, 2:])) ** 2
    pp, pv, vv = cov[:, 0], cov[:, 1], cov[:, 2]
    s = pp + r
    kp = pp / s
    kv = pv / s
    y = z - mean[:, :4]
    mean[:, :4] += kp * y
    mean[:, 4:] += kv * y
    vv -= kv * pv
    pv *= 1.0 - kp
    pp *= 1.0 - kp
