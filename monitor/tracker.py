"""Multi-object tracker: batched Kalman motion, ByteTrack two-stage IoU association.

All tracks live in one ``(N, _NCOL)`` float64 table (one row per track: Kalman mean
and block covariance, last score, last-match time, hits, state, class, public
id), so prediction, association bookkeeping and eviction are a few whole-array
operations per frame whatever the number of tracks; there is no per-track Python.

Life cycle: a high-score detection that matches nothing starts a *tentative* track;
after ``min_confirm_hits`` matches it is *confirmed* and gets a public id (ids are
dense, start at 1, are unique per tracker and never reused, also across ``reset()``).
A confirmed track that misses a detection step becomes *lost*, keeps being predicted
and can be re-associated. Any track is *removed* once ``lost_buffer_s`` seconds have
passed since its last match; this also ends tracks coasting through a long run of
predict-only steps (not misses: the detector did not look, but a track must not live
on as a drifting phantom when the detector keeps failing). Tentative tracks are
dropped at their first miss (as in ByteTrack) and never surface. Time comes only
from ``mono`` (seconds), so dropped frames, irregular frame intervals and
predict-only steps are handled by the motion model, not by counting frames.

Association per detection step (ByteTrack, with tentatives also offered low scores):

1. high-score detections vs confirmed and lost tracks (IoU >= ``match_iou``);
2. remaining high-score detections vs tentative tracks (IoU >= ``match_iou``);
3. low-score detections vs confirmed and tentative tracks still unmatched (IoU >=
   ``LOW_MATCH_IOU``, stricter because low scores are often clutter). Offering them
   to tentatives too (ByteTrack does not) stops a real object whose second detection
   scored low from being dropped and re-born; it measured +0.6 MOTA points on the
   benchmark (docs/tracking.md).

IoU is zeroed between classes of different ``class_groups`` (a person never
continues as a car); within a group (car, bus, truck by default: detectors flip a
vehicle between them) a class change is allowed, ranked below a same-class pair.

Measurement noise: the Kalman filter's detector-box noise starts at ByteTrack's 5 %
of the box size and is learned from the innovations of established tracks at >= 10
detection steps/s (never below 5 %; :meth:`Tracker._learn_meas_noise`), so a noisy
detector's jitter does not become velocity and drift coasting tracks onto
neighbours.

Low detection rates (5/s and below): a new track has no velocity, so at its second
detection a fast object may no longer overlap it. Tracks with a single detection
therefore also match, in every stage, inside a centre-distance gate, in box sizes, that grows with the time since
their last detection (``max_speed`` box sizes per second; a no-op at 25/s where
IoU already covers the gate), and the Kalman prior on a new track's speed is wide
enough (``KalmanParams.init_vel_std``) for its second detection to set most of its
velocity. With ``confirm_on_start``, tracks born on the first detection step
(start, ``reset()``) are confirmed at once, as in ByteTrack. A birth candidate that is a second box of
another class of its group on an object (class-wise NMS) starts no track.
Measurements: docs/tracking.md, "Counting at low detection rates".

Every output row also carries its track's first detection (box and time, in
``Detections.data``): a track is reported from its second detection on, and at
low rates rules need to know where it was before (line crossings).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from config.base import COCO_CLASSES
from config.tracker import TrackerConfig
from monitor import kalman
from monitor.assignment import iou_cxcywh_xyxy, iou_matrix, match
from monitor.types import ClassGroups, Detections

__all__ = ["LOW_MATCH_IOU", "Tracker"]

log = logging.getLogger(__name__)

#: Minimum IoU to accept a low-score detection in the second stage (ByteTrack: 0.5).
LOW_MATCH_IOU = 0.5

#: Widths and heights of a gated pair differ by less than this factor.
_GATE_SIZE = 1.6
#: Factor on the similarity of a track and a detection of another class of its
#: group, for ranking only (thresholds apply to the IoU before it).
_CROSS_CLASS = 0.5
#: IoU above which a birth candidate of another class of a group is taken as a
#: second box on an object already matched this step (no new track).
_SECOND_BOX_IOU = 0.7
#: Smallest similarity accepted once the gate has been merged in (gate scores are
#: already zero outside it; IoU below ``match_iou`` is zeroed first).
_MIN_SIM = 1e-9

# Column layout of the track table.
_MEAN = slice(0, 8)  # cx, cy, w, h, vcx, vcy, vw, vh (px, px/s)
_COV = slice(8, 20)  # (3, 4) block covariance, see monitor.kalman
_PP = slice(8, 12)  # its first row: the position variances of cx, cy, w, h
_SCORE = 20  # last matched detection score
_SEEN = 21  # mono of the last match
_HITS = 22  # number of matches
_STATE = 23  # _TENTATIVE / _CONFIRMED / _LOST
_CLS = 24  # class id
_PID = 25  # public id (0 until confirmed)
_BIRTH = slice(26, 30)  # x1, y1, x2, y2 of the first detection's box (px)
_BIRTH_T = 30  # mono of the first detection
_BORN = slice(26, 31)  # both (birth box and time)
_NCOL = 31

_TENTATIVE, _CONFIRMED, _LOST = 0.0, 1.0, 2.0

_NO_IDS = np.zeros(0, dtype=np.int64)

#: Weight of one observation in the learned measurement noise (about the last
#: 50 matched boxes of established tracks decide it).
_MEAS_ALPHA = 0.02
#: Largest measurement noise learned, box sizes.
_MEAS_STD_MAX = 0.25
#: Learn only from steps this short (s): over longer ones the innovation is mostly
#: motion-model error (at 5 detections/s, cars slowing down with perspective on
#: road_traffic.mp4 taught it 0.22 box heights of "noise"; their boxes jitter 1 %).
_MEAS_MAX_DT = 0.1
#: Learn from every N-th detection step (the noise changes slowly; a fraction of
#: the cost, < 10 us per step on average for 30 tracks).
_MEAS_EVERY = 2


class Tracker:
    """ByteTrack-style tracker over :class:`~monitor.types.Detections`.

    Args:
        cfg: Thresholds and buffers (seconds); defaults when ``None``.
        class_names: Detector class names, index == class id, to resolve
            ``cfg.class_groups``; COCO-80 when ``None``.
    """

    def __init__(
        self, cfg: TrackerConfig | None = None, class_names: Sequence[str] | None = None
    ) -> None:
        self.cfg = cfg if cfg is not None else TrackerConfig()
        names = tuple(class_names) if class_names is not None else COCO_CLASSES
        # Class id -> group id: a track switches class only inside its group.
        self._groups = ClassGroups(names, self.cfg.class_groups)
        self.kalman = kalman.KalmanParams()
        # Measurement noise learned from this tracker's own detections (see
        # _learn_meas_noise); never below the default, which stays the floor. Kept
        # across reset(): it belongs to the detector and the scene, not the tracks.
        self.learn_meas_noise = True
        self._meas_floor = float(self.kalman.std_meas)
        self._meas_var = np.full(4, self._meas_floor**2)
        self._meas_step = 0
        # Tuning knobs kept off the config schema (measured in docs/tracking.md):
        # offer low-score detections to tentative tracks (stage 3), and how long an
        # unmatched tentative track survives (0: dropped at its first miss).
        self.low_for_tentative = True
        self.tentative_buffer_s = 0.0
        # Whether the next detection step is the first (start, or after reset):
        # with ``cfg.confirm_on_start`` its births are confirmed at once.
        self._first_step = True
        self._next_id = 1
        self._bad_inputs = 0
        self._t = np.zeros((0, _NCOL))
        self._mono: float | None = None
        self._removed = _NO_IDS
        self._pending_removed = _NO_IDS

    # ------------------------------------------------------------------ public API
    @property
    def removed_ids(self) -> npt.NDArray[np.int64]:
        """``(K,)`` int64 public ids removed during the last :meth:`update` call."""
        return self._removed

    @property
    def num_tracks(self) -> int:
        """Tracks held internally (tentative, confirmed and lost)."""
        return int(self._t.shape[0])

    @property
    def next_id(self) -> int:
        """The public id the next confirmed track will get."""
        return self._next_id

    @next_id.setter
    def next_id(self, value: int) -> None:
        # Only forward: ids are never reused, also across a worker restart (the
        # worker saves this with the rule state and sets it back on start).
        value = int(value)
        if value < 1 or value >= 2**62:
            raise ValueError(f"next_id must be in [1, 2**62), got {value}")
        self._next_id = max(self._next_id, value)

    def pause(self, seconds: float) -> None:
        """Leave ``seconds`` out of every track's clock (a camera outage).

        While a camera is offline nobody is observed, so the time must not count
        as misses: every track's last-match and birth times (and the tracker's own
        clock) move forward by ``seconds``, and the next :meth:`update` sees only
        the time around the outage. A person who stood still keeps their id; an
        object that moved meanwhile fails to match and is removed as usual.

        Args:
            seconds: Length of the outage (``<= 0``: nothing happens).
        """
        seconds = float(seconds)
        if not math.isfinite(seconds) or seconds <= 0.0:
            return
        self._t[:, _SEEN] += seconds
        self._t[:, _BIRTH_T] += seconds
        if self._mono is not None:
            self._mono += seconds

    def reset(self) -> None:
        """Forget all tracks (ids keep counting up; dropped ids are reported by the
        next :meth:`update` in :attr:`removed_ids` so rules can evict them)."""
        pids = self._t[:, _PID]
        self._pending_removed = np.concatenate(
            [self._pending_removed, pids[pids > 0].astype(np.int64)]
        )
        self._t = np.zeros((0, _NCOL))
        self._mono = None
        self._first_step = True
        self._removed = _NO_IDS

    def update(self, detections: Detections | None, mono: float) -> Detections:
        """Advance to time ``mono`` and associate this frame's detections.

        Args:
            detections: This frame's detector output (``tracker_id`` ignored), or
                ``None`` for a predict-only step (the detector did not run).
            mono: Monotonic timestamp in seconds; intervals may be irregular.

        Returns:
            Confirmed tracks with ``tracker_id`` (int64, > 0). On a detection step:
            the confirmed tracks matched this frame, with the matched detection's
            box, score and ``data`` columns. On a predict-only step: the confirmed,
            not-lost tracks with their predicted boxes and last matched score.
            Always with ``data["birth_xyxy"]`` ``(N, 4)`` and ``data["birth_mono"]``
            ``(N,)``: the box and time of each track's first detection.

        Raises:
            TypeError: ``detections`` is neither ``Detections`` nor ``None``.
            ValueError: ``mono`` is not a finite number.
        """
        if detections is not None and not isinstance(detections, Detections):
            raise TypeError(
                "Tracker.update: detections must be Detections or None, "
                f"got {type(detections).__name__}"
            )
        mono = float(mono)
        if not math.isfinite(mono):
            raise ValueError(f"Tracker.update: mono must be finite, got {mono}")
        dt = 0.0
        if self._mono is not None:
            dt = mono - self._mono
            if dt < 0.0:
                # A clock step backwards must not corrupt the filter; treat as dt=0.
                log.warning("tracker: time went backwards by %.3f s; ignoring", -dt)
                dt, mono = 0.0, self._mono
        self._mono = mono

        t = self._t
        # Any track unmatched for longer than the buffer goes, not only lost ones
        # (a track coasting through predict-only steps, detector skipped or
        # failing, must not live on as a drifting phantom), and before matching:
        # after a long gap between calls (a camera outage) a stale track must not
        # take a new detection. Reported in this update's ``removed_ids``.
        stale = mono - t[:, _SEEN] > self.cfg.lost_buffer_s
        if stale.any():
            pids = t[stale, _PID]
            self._pending_removed = np.concatenate(
                [self._pending_removed, pids[pids > 0].astype(np.int64)]
            )
            t = self._t = t[~stale]
        n = t.shape[0]
        if n:
            kalman.predict(t[:, _MEAN], t[:, _COV].reshape(n, 3, 4), dt, self.kalman)
        if detections is None:
            return self._predict_only(mono)
        return self._associate(detections, mono)

    # ------------------------------------------------------------------ internals
    def _predicted_xyxy(self, rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """``(N, 4)`` corner boxes of ``(N, _NCOL)`` rows' current Kalman means."""
        c = rows[:, 0:2]
        half = 0.5 * rows[:, 2:4]
        return np.concatenate([c - half, c + half], axis=1)

    def _second_box(
        self,
        det: Detections,
        born: npt.NDArray[np.intp],
        md: npt.NDArray[np.intp],
    ) -> npt.NDArray[np.bool_]:
        """``(B,)`` True where birth candidate ``born`` is a second box on one object.

        Class-wise NMS leaves e.g. a car box and a truck box on one vehicle; the
        second box must not become a second track (the line rule counted such
        pairs twice). A candidate is a second box when it overlaps (IoU >=
        ``_SECOND_BOX_IOU``) a box of another class of its group that was matched
        to a track this step, or that is a higher-scoring birth candidate.

        Args:
            det: This step's detections.
            born: ``(B,)`` indices of birth candidates.
            md: ``(M,)`` indices of matched detections.
        """
        ref = np.concatenate([md, born])
        ov = iou_matrix(det.xyxy[born], det.xyxy[ref])
        cls = det.class_id
        grp = self._groups(cls)
        ov *= (grp[born][:, None] == grp[ref][None, :]) & (
            cls[born][:, None] != cls[ref][None, :]
        )
        conf = det.confidence
        # Ties between candidates go to the earlier row (the detector's order).
        first = (conf[ref][None, :] > conf[born][:, None]) | (
            (conf[ref][None, :] == conf[born][:, None]) & (ref[None, :] < born[:, None])
        )
        first[:, : md.size] = True
        return np.asarray(((ov >= _SECOND_BOX_IOU) & first).any(axis=1))

    def _gate_similarity(
        self,
        rows: npt.NDArray[np.float64],
        z: npt.NDArray[np.float64],
        cls: npt.NDArray[np.int64],
        mono: float,
    ) -> npt.NDArray[np.float64]:
        """Distance-gate similarity of tracks to detections, in ``[0, 1)``.

        The centre distance is measured in box sizes (x by the mean width, y by the
        mean height of the pair); a pair is inside the gate when that distance is
        below ``max_speed * (mono - last match)`` and the widths and
        heights differ by less than ``_GATE_SIZE``x. Inside, the similarity is
        ``1 - distance / gate`` (0 outside and across class groups).

        Args:
            rows: ``(N, _NCOL)`` track rows (predicted means).
            z: ``(M, 4)`` detections ``[cx, cy, w, h]``.
            cls: ``(M,)`` detection classes.
            mono: Current time, seconds.

        Returns:
            ``(N, M)`` similarity.
        """
        tz = rows[:, 0:4]
        mw = 0.5 * (tz[:, 2:3] + z[:, 2])
        mh = 0.5 * (tz[:, 3:4] + z[:, 3])
        dx = (z[:, 0] - tz[:, 0:1]) / mw
        dy = (z[:, 1] - tz[:, 1:2]) / mh
        dist = np.sqrt(dx * dx + dy * dy)
        gate = self.cfg.max_speed * (mono - rows[:, _SEEN : _SEEN + 1])
        np.maximum(gate, 1e-9, out=gate)
        sim = 1.0 - dist / gate
        rw = z[:, 2] / tz[:, 2:3]
        rh = z[:, 3] / tz[:, 3:4]
        lo, hi = 1.0 / _GATE_SIZE, _GATE_SIZE
        ok = (rw > lo) & (rw < hi) & (rh > lo) & (rh < hi)
        ok &= self._groups(rows[:, _CLS])[:, None] == self._groups(cls)[None, :]
        sim[~ok] = 0.0
        np.maximum(sim, 0.0, out=sim)
        return sim

    @property
    def meas_std(self) -> npt.NDArray[np.float64]:
        """``(4,)`` measurement noise in use for ``[cx, cy, w, h]``, box sizes."""
        return np.broadcast_to(np.asarray(self.kalman.std_meas, np.float64), (4,))

    def _learn_meas_noise(
        self,
        rows: npt.NDArray[np.float64],
        z: npt.NDArray[np.float64],
        prev_state: npt.NDArray[np.float64],
        mono: float,
    ) -> None:
        """Learn the detector's box noise from this step's innovations.

        For a track with an established velocity, the innovation ``v = z - x_pred``
        has ``E[v**2] = P_pred + R`` (innovation-based adaptive estimation), so
        ``mean(v**2 - P_pred)`` estimates the measurement variance ``R``. It is
        averaged over observations (``_MEAS_ALPHA`` each) per coordinate, in box
        sizes, and used from the next step on, clipped to ``[default,
        _MEAS_STD_MAX]``. Only steps of at most ``_MEAS_MAX_DT`` count, every
        ``_MEAS_EVERY``-th detection step (cost). Why: a filter that trusts boxes
        more than the detector deserves follows the jitter, its velocity turns
        noisy, and a coasting track drifts onto a neighbour (issue #5: on the MOT
        benchmark's hard noise level the boxes jitter by 7-14 % of their size, the
        default assumes 5 %). Real detectors on the shared videos jitter by
        0.5-1.5 %, so there the default floor stays in force.

        Args:
            rows: ``(M, _NCOL)`` matched track rows, predicted to this step.
            z: ``(M, 4)`` their measurements ``[cx, cy, w, h]``.
            prev_state: ``(M,)`` their states before this step.
            mono: This step's time, seconds (``rows`` still hold the last match's).
        """
        # Tracks matched on the previous step with a velocity learned from >= 3
        # boxes: for others the innovation is mostly motion-model error.
        ok = (
            (rows[:, _HITS] >= 3.0)
            & (prev_state == _CONFIRMED)
            & (mono - rows[:, _SEEN] <= _MEAS_MAX_DT)
        )
        k = int(np.count_nonzero(ok))
        if not k:
            return
        if k < ok.size:
            rows, z = rows[ok], z[ok]
        s2 = np.concatenate((rows[:, 2:4], rows[:, 2:4]), axis=1)
        s2 *= s2
        prior = rows[:, _PP] / s2  # predicted position variances
        v2 = z - rows[:, 0:4]
        v2 *= v2
        v2 /= s2
        var = self._meas_var
        # A mismatch (two objects swapped) is not noise: cap each term at 3 sigma.
        cap = prior + var
        cap *= 9.0
        np.minimum(v2, cap, out=v2)
        v2 -= prior
        w = 1.0 - (1.0 - _MEAS_ALPHA) ** k
        var = v2.sum(axis=0)
        var *= w / k
        var += (1.0 - w) * self._meas_var
        np.maximum(var, 0.0, out=var)
        if not math.isfinite(float(var.sum())):  # pragma: no cover - defensive
            return
        self._meas_var = var
        std = np.sqrt(var)
        np.maximum(std, self._meas_floor, out=std)
        np.minimum(std, _MEAS_STD_MAX, out=std)
        self.kalman.std_meas = std

    def _publish_removals(self, drop: npt.NDArray[np.bool_] | None) -> None:
        """Remove the rows in ``drop`` and publish this update's ``removed_ids``
        (with those already removed: stale tracks, ``reset()``)."""
        removed = self._pending_removed
        self._pending_removed = _NO_IDS
        if drop is not None and drop.any():
            pids = self._t[drop, _PID]
            pids = pids[pids > 0].astype(np.int64)
            if pids.size:
                removed = np.concatenate([removed, pids]) if removed.size else pids
            self._t = self._t[~drop]
        self._removed = removed

    def _predict_only(self, mono: float) -> Detections:
        self._publish_removals(None)
        t = self._t
        rows = t[t[:, _STATE] == _CONFIRMED]
        return Detections(
            xyxy=self._predicted_xyxy(rows).astype(np.float32),
            confidence=rows[:, _SCORE].astype(np.float32),
            class_id=rows[:, _CLS].astype(np.int64),
            tracker_id=rows[:, _PID].astype(np.int64),
            data=_birth_data(rows[:, _BORN]),
        )

    def _clean(self, det: Detections) -> Detections:
        """Drop rows that cannot be tracked (degenerate box, NaN or low score)."""
        conf = det.confidence
        xy = det.xyxy
        ok = (
            (conf >= self.cfg.low_threshold)
            & (xy[:, 2] > xy[:, 0])
            & (xy[:, 3] > xy[:, 1])
        )
        if ok.all():
            return det
        bad = int((~((xy[:, 2] > xy[:, 0]) & (xy[:, 3] > xy[:, 1]))).sum()) + int(
            np.isnan(conf).sum()
        )
        if bad:
            # Rate-limited: a broken detector must not flood the log every frame.
            if self._bad_inputs % 1000 == 0:
                log.warning(
                    "tracker: ignoring %d detection(s) with an empty/inverted box "
                    "or NaN score (seen %d times)",
                    bad,
                    self._bad_inputs + 1,
                )
            self._bad_inputs += 1
        return det[ok]

    def _associate(self, det: Detections, mono: float) -> Detections:
        cfg = self.cfg
        det = self._clean(det)
        t = self._t
        n, d = t.shape[0], len(det)
        state = t[:, _STATE].copy()
        conf = det.confidence
        z_all = kalman.xyxy_to_cxcywh(det.xyxy)
        high = conf >= cfg.high_threshold

        track_of_det = np.full(d, -1, dtype=np.intp)
        matched = np.zeros(n, dtype=bool)
        if n and d:
            iou = iou_cxcywh_xyxy(t[:, 0:4], det.xyxy)
            # IoU only within a class group (a person never continues as a car);
            # a class change inside a group ranks below a same-class pair (a car
            # track keeps the car box when class-wise NMS left a car and a truck
            # box on one vehicle), while thresholds apply to the IoU itself.
            cross = t[:, _CLS][:, None] != det.class_id[None, :]
            any_cross = bool(cross.any())
            if any_cross:  # (one-class scenes skip the group lookups)
                gt, gd = self._groups(t[:, _CLS]), self._groups(det.class_id)
                iou *= ~cross | (gt[:, None] == gd[None, :])
            free_det = np.ones(d, dtype=bool)
            tent = state == _TENTATIVE
            one_hit = t[:, _HITS] == 1.0
            stages = (
                (~tent, high, cfg.match_iou),
                (tent, high, cfg.match_iou),
                (
                    (state == _CONFIRMED) | (tent & self.low_for_tentative),
                    ~high,
                    LOW_MATCH_IOU,
                ),
            )
            for track_sel, det_sel, min_iou in stages:
                ti = (track_sel & ~matched).nonzero()[0]
                di = (det_sel & free_det).nonzero()[0]
                if not ti.size or not di.size:
                    continue
                sc = iou[ti[:, None], di]  # one gather (a copy), edited in place
                gated = one_hit[ti]
                if cfg.max_speed > 0.0 and gated.any():
                    # One-hit tracks have no velocity yet: also accept a
                    # detection within a distance gate that grows with time.
                    sc[sc < min_iou] = 0.0
                    gate = self._gate_similarity(
                        t[ti], z_all[di], det.class_id[di], mono
                    )
                    gate[~gated] = 0.0
                    np.maximum(sc, gate, out=sc)
                    min_iou = _MIN_SIM
                if any_cross:
                    sc[sc < min_iou] = 0.0
                    sc *= np.where(cross[ti[:, None], di], _CROSS_CLASS, 1.0)
                    min_iou = _MIN_SIM
                r, c = match(sc, min_iou, inplace=True)
                matched[ti[r]] = True
                free_det[di[c]] = False
                track_of_det[di[c]] = ti[r]

        # Kalman correction and bookkeeping of matched tracks, all at once.
        md = (track_of_det >= 0).nonzero()[0]
        mt = track_of_det[md]
        if md.size:
            rows = t[mt]
            self._meas_step += 1
            if self.learn_meas_noise and self._meas_step % _MEAS_EVERY == 0:
                self._learn_meas_noise(rows, z_all[md], state[mt], mono)
            # Views into ``rows``: the Kalman update writes straight into them.
            cov = rows[:, _COV].reshape(-1, 3, 4)
            kalman.update(rows[:, _MEAN], cov, z_all[md], self.kalman)
            if not np.shares_memory(cov, rows):  # pragma: no cover - numpy copied
                rows[:, _COV] = cov.reshape(-1, 12)
            rows[:, _SCORE] = conf[md]
            rows[:, _CLS] = det.class_id[md]
            rows[:, _SEEN] = mono
            hits = rows[:, _HITS]
            hits += 1.0
            st = rows[:, _STATE]
            promote = (st == _TENTATIVE) & (hits >= cfg.min_confirm_hits)
            st[st == _LOST] = _CONFIRMED
            k = int(promote.sum())
            if k:
                st[promote] = _CONFIRMED
                rows[promote, _PID] = np.arange(self._next_id, self._next_id + k)
                self._next_id += k
            t[mt] = rows

        # Misses: confirmed -> lost; tentative -> dropped.
        unmatched = ~matched
        t[unmatched & (state == _CONFIRMED), _STATE] = _LOST
        self._t = t
        self._publish_removals(
            unmatched
            & (state == _TENTATIVE)
            & (mono - t[:, _SEEN] > self.tentative_buffer_s)
        )

        # Births from unmatched high-score detections.
        born = np.flatnonzero(
            (track_of_det < 0) & high & (conf >= cfg.new_track_threshold)
        )
        if born.size:
            born = born[~self._second_box(det, born, md)]
        out_det = md
        out_pid = t[mt, _PID] if md.size else np.zeros(0)
        out_ok = out_pid > 0
        out_born = t[mt, _BORN]
        if born.size:
            new = np.zeros((born.size, _NCOL))
            new[:, _BIRTH] = det.xyxy[born]
            new[:, _BIRTH_T] = mono
            mean, cov = kalman.initiate(z_all[born], self.kalman)
            new[:, _MEAN] = mean
            new[:, _COV] = cov.reshape(-1, 12)
            new[:, _SCORE] = conf[born]
            new[:, _SEEN] = mono
            new[:, _HITS] = 1.0
            new[:, _CLS] = det.class_id[born]
            if cfg.min_confirm_hits <= 1 or (self._first_step and cfg.confirm_on_start):
                new[:, _STATE] = _CONFIRMED
                new[:, _PID] = np.arange(self._next_id, self._next_id + born.size)
                self._next_id += born.size
                out_det = np.concatenate([md, born])
                out_pid = np.concatenate([out_pid, new[:, _PID]])
                out_ok = np.concatenate([out_ok, np.ones(born.size, dtype=bool)])
                out_born = np.concatenate([out_born, new[:, _BORN]])
            self._t = np.concatenate([self._t, new])

        self._first_step = False
        sel = out_det[out_ok]
        data = {k: v[sel] for k, v in det.data.items()}
        data.update(_birth_data(out_born[out_ok]))
        return Detections(
            xyxy=det.xyxy[sel],
            confidence=conf[sel],
            class_id=det.class_id[sel],
            tracker_id=out_pid[out_ok].astype(np.int64),
            data=data,
        )


def _birth_data(born: npt.NDArray[np.float64]) -> dict[str, npt.NDArray[np.float64]]:
    """``Detections.data`` columns of tracks from their ``(N, 5)`` ``_BORN`` columns.

    ``birth_xyxy`` ``(N, 4)``: the box of the track's first detection (while it was
    still tentative; px); ``birth_mono`` ``(N,)``: that detection's time (s). Rules
    use them to see where a track was before it was confirmed (see
    :class:`pipelines.vehicle_flow.VehicleFlowPipeline`).
    """
    return {"birth_xyxy": born[:, 0:4], "birth_mono": born[:, 4]}
