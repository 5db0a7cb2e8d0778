"""Rule benchmark: loitering events and line counts, truth vs the full pipeline.

Part 1 — MOT ground truth (TUD-Campus, TUD-Stadtmitte from the motmetrics wheel,
640x480, 25 fps). For the zones/lines in :data:`MOT_ZONES` / :data:`MOT_LINES`:

* true loitering events: the loitering rule applied to the ground-truth tracks
  (ground-truth ids and boxes, so no id switches, no misses);
* true crossings: an independent per-trajectory derivation (:func:`true_crossings`)
  of the counting definition: a ground-truth id counts "in" (or "out") once when its
  anchor goes from beyond the band on one side to beyond the band on the other,
  projecting onto the segment;
* predicted: ``scripts/motdata.py`` noisy detections (levels easy/medium/hard,
  seeds) → ``monitor.tracker.Tracker`` → the rules;
* line counts are compared as totals per line and direction (abs/rel err) and, so
  that a false count cannot hide a miss, crossing by crossing: a predicted crossing
  matches an unmatched true one of the same direction within 1 s whose ground-truth
  id is the one its box overlaps best (IoU ≥ 0.3) on that frame (else the id its
  track maps to within ±5 frames); ``missed`` = true crossings left unmatched,
  ``extra`` = predicted crossings left unmatched (an approximate mapping inside
  walking groups: a correct count can land on a neighbour's id).

A predicted loitering event matches a true one when the ground-truth id that its
track(s) overlapped most (IoU ≥ 0.5, over the event's span) owns a true event in the
same zone whose span overlaps it; each true event matches at most once.

Part 2 — shared real videos (road_traffic.mp4, bridge_traffic.mp4): YOLOX-Nano →
Tracker → VehicleFlowPipeline on one line per video, compared with hand counts
(method in docs/rules.md).

Usage: ``python scripts/bench_events.py [--seeds 0 1 2] [--skip-video]``
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import motdata  # noqa: E402

from config.base import COCO_CLASSES  # noqa: E402
from config.rules import LoiteringRuleConfig, VehicleFlowRuleConfig  # noqa: E402
from config.schema import LineConfig, ZoneConfig  # noqa: E402
from monitor.events import EventState  # noqa: E402
from monitor.types import Detections, Frame  # noqa: E402
from monitor.zones import LineZone  # noqa: E402
from pipelines.loitering import LoiteringPipeline  # noqa: E402
from pipelines.vehicle_flow import VehicleFlowPipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TS0 = 1_780_000_000.0

# Zones (relative; feet = bottom-centre anchor). The sequences are 2.8 s and 7.2 s
# long, so dwell thresholds are scaled down to seconds.
MOT_ZONES: dict[str, list[ZoneConfig]] = {
    "TUD-Campus": [
        ZoneConfig(id="left", polygon=((0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (0.0, 1.0))),
        ZoneConfig(id="right", polygon=((0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.5, 1.0))),
    ],
    "TUD-Stadtmitte": [
        ZoneConfig(id="left", polygon=((0.0, 0.4), (0.5, 0.4), (0.5, 1.0), (0.0, 1.0))),
        ZoneConfig(id="right", polygon=((0.5, 0.4), (1.0, 0.4), (1.0, 1.0), (0.5, 1.0))),
    ],
}  # fmt: skip
MOT_LINES: dict[str, list[LineConfig]] = {
    seq: [
        LineConfig(id="x30", start=(0.3, 0.0), end=(0.3, 1.0), in_direction="right"),
        LineConfig(id="x50", start=(0.5, 0.0), end=(0.5, 1.0), in_direction="right"),
        LineConfig(id="x70", start=(0.7, 0.0), end=(0.7, 1.0), in_direction="right"),
    ]
    for seq in motdata.SEQUENCES
}
LOITER = dict(
    min_dwell_s=1.5, entry_s=0.2, grace_s=1.0, update_s=1.0, cooldown_s=60,
    reid_distance=0.1,
)  # fmt: skip
FLOW_HYST = 0.01
# Tolerances (s) on the dwell threshold for the second loitering table: the
# sequences are so short that many true visits end within a few frames of
# min_dwell_s, where a person first detected 0.2 s late decides the score.
DWELL_TOL_S = (0.2, 0.4)


def frame_at(seq: str, f: int, fps: float, image: np.ndarray) -> Frame:
    return Frame(seq, f, TS0 + f / fps, 1000.0 + f / fps, image)


def gt_dets(rows: np.ndarray) -> Detections:
    """Ground-truth rows ``[id, x1, y1, x2, y2]`` as tracked person detections."""
    return Detections(
        xyxy=rows[:, 1:5],
        confidence=np.ones(len(rows)),
        class_id=np.zeros(len(rows), np.int64),
        tracker_id=rows[:, 0].astype(np.int64),
    )


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` IoU of ``(N, 4)`` and ``(M, 4)`` boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def run_loitering(seq, frames_dets, zones, removed_per_frame, min_dwell_s=None):
    """Loitering events per zone: list of (zone, tracker ids, first f, last f)."""
    params = dict(LOITER)
    if min_dwell_s is not None:
        params["min_dwell_s"] = min_dwell_s
    info = motdata.SEQUENCES[seq]
    image = np.zeros((info.height, info.width, 3), np.uint8)
    pipes = [
        LoiteringPipeline(
            LoiteringRuleConfig(id=f"l-{z.id}", zone=z.id, **params),
            z,
            COCO_CLASSES,
        )
        for z in zones
    ]
    spans: dict[Any, dict[str, Any]] = {}
    n = len(frames_dets)
    for f in range(1, n + 3 * int(info.fps)):  # trailing empty frames close events
        det = frames_dets[f - 1] if f <= n else Detections.empty(True)
        rm = removed_per_frame[f - 1] if f <= n else np.zeros(0, np.int64)
        fr = frame_at(seq, f, info.fps, image)
        for p in pipes:
            for ev in p.update(fr, det, rm):
                s = spans.setdefault(
                    ev.event_id,
                    {"zone": p.zone_cfg.id, "tids": set(), "f0": f, "f1": f},
                )
                s["tids"].add(ev.payload.tracker_id)
                s["f1"] = min(f, n)
                if ev.state is EventState.END:
                    # The event covers the visit up to its last in-zone frame.
                    s["f1"] = min(
                        n, int(round((ev.ended_at.timestamp() - TS0) * info.fps))
                    )
    return list(spans.values())


def track_gt_map(tracked: list[Detections], gt: dict[int, np.ndarray]):
    """Per frame: tracker id → ground-truth id (IoU ≥ 0.5, greedy by IoU)."""
    out = []
    for f, det in enumerate(tracked, start=1):
        g = gt.get(f, np.zeros((0, 5)))
        m: dict[int, int] = {}
        if len(det) and len(g):
            ious = iou(det.xyxy.astype(np.float64), g[:, 1:5])
            for flat in np.argsort(-ious, axis=None):
                i, j = np.unravel_index(flat, ious.shape)
                if ious[i, j] < 0.5:
                    break
                tid, gid = int(det.tracker_id[i]), int(g[j, 0])
                if tid not in m and gid not in m.values():
                    m[tid] = gid
        out.append(m)
    return out


def match_events(true_ev, pred_ev, fmap):
    """(true positives, #pred, #true) for loitering events."""
    used, _ = match_pairs(true_ev, pred_ev, fmap)
    return len(used), len(pred_ev), len(true_ev)


def event_gt_id(p, fmap) -> int | None:
    """The ground-truth id a predicted event's track(s) overlapped most (IoU >= 0.5
    per :func:`track_gt_map`, counted over the event's frames), or None."""
    votes: dict[int, int] = defaultdict(int)
    for f in range(p["f0"], p["f1"] + 1):
        for tid in p["tids"]:
            gid = fmap[f - 1].get(tid) if f - 1 < len(fmap) else None
            if gid is not None:
                votes[gid] += 1
    return max(votes, key=votes.__getitem__) if votes else None


def match_pairs(true_ev, pred_ev, fmap) -> tuple[set[int], set[int]]:
    """Greedy one-to-one match: (indices of matched true events, of matched preds)."""
    used: set[int] = set()
    hit: set[int] = set()
    for pi, p in enumerate(pred_ev):
        gid = event_gt_id(p, fmap)
        if gid is None:
            continue
        for k, t in enumerate(true_ev):
            if (
                k not in used
                and t["zone"] == p["zone"]
                and gid in t["tids"]
                and t["f0"] <= p["f1"]
                and p["f0"] <= t["f1"]
            ):
                used.add(k)
                hit.add(pi)
                break
    return used, hit


def match_tolerant(true_req, true_acc, pred_ev, fmap) -> tuple[int, int, int, int]:
    """Loitering match with a tolerance on the dwell threshold.

    ``true_req``: true events at threshold + tol (visits clearly over it: missing one
    is a miss); ``true_acc``: true events at threshold - tol (visits that came within
    tol of it: flagging one is not a false alarm). A visit is then only scored where
    its ground-truth dwell is not within tol of the threshold, so that a detector that
    finds a person a few frames late (or early) cannot flip the result.

    Returns:
        (preds matching an acceptable event, #preds, required events found, #required)
    """
    _, ok_pred = match_pairs(true_acc, pred_ev, fmap)
    found, _ = match_pairs(true_req, pred_ev, fmap)
    return len(ok_pred), len(pred_ev), len(found), len(true_req)


def true_crossing_events(
    gt, line: LineConfig, size, hyst: float
) -> list[tuple[int, str, int]]:
    """``(gt id, direction, frame)`` per true crossing (independent code).

    A ground-truth id counts "in" (or "out") once when its anchor goes from beyond
    the band on one side to beyond the band on the other, projecting onto the segment.
    """
    lz = LineZone.from_relative(line.start, line.end, line.in_direction, size, hyst)
    traj: dict[int, list[tuple[int, float, float]]] = defaultdict(list)
    for f in sorted(gt):
        for row in gt[f]:
            x = (row[1] + row[3]) / 2
            traj[int(row[0])].append((f, x, row[4]))
    events = []
    for gid, pts in traj.items():
        p = np.asarray(pts)
        d = lz.signed_distance(p[:, 1:])
        t = lz.along(p[:, 1:])
        side = 0
        did: set[str] = set()
        for f, di, ti in zip(p[:, 0], d, t, strict=True):
            s = 1 if di > lz.hysteresis_px else -1 if di < -lz.hysteresis_px else 0
            if s == 0:
                continue
            if side and s != side and 0 <= ti <= 1:
                direction = "in" if s == 1 else "out"
                if direction not in did:
                    did.add(direction)
                    events.append((gid, direction, int(f)))
            side = s
    return events


def true_crossings(gt, line: LineConfig, size, hyst: float) -> tuple[int, int]:
    """Crossings per direction from ground-truth trajectories (independent code)."""
    ev = true_crossing_events(gt, line, size, hyst)
    return sum(e[1] == "in" for e in ev), sum(e[1] == "out" for e in ev)


def crossing_gt_id(f: int, bbox, gt, fmap, tid: int) -> int | None:
    """Ground-truth id of a predicted crossing: best IoU ≥ 0.3 with its box on its
    frame, else the id its track mapped to (IoU ≥ 0.5) within ±5 frames."""
    g = gt.get(f, np.zeros((0, 5)))
    if len(g):
        ious = iou(np.asarray([bbox], np.float64), g[:, 1:5])[0]
        if ious.max() >= 0.3:
            return int(g[int(np.argmax(ious)), 0])
    for df in (1, -1, 2, -2, 3, -3, 4, -4, 5, -5):
        if 0 < f + df <= len(fmap) and tid in fmap[f + df - 1]:
            return fmap[f + df - 1][tid]
    return None


def match_crossings(true_ev, pred_ev, gt, fmap, fps: float) -> tuple[int, int]:
    """``(missed, extra)``: true crossings no prediction matched and predictions that
    matched no true crossing (same gt id and direction, within 1 s)."""
    used: set[int] = set()
    extra = 0
    for f, tid, direction, bbox in pred_ev:
        gid = crossing_gt_id(f, bbox, gt, fmap, tid)
        hit = next(
            (
                k
                for k, (g, d, tf) in enumerate(true_ev)
                if k not in used and g == gid and d == direction and abs(tf - f) <= fps
            ),
            None,
        )
        if hit is None:
            extra += 1
        else:
            used.add(hit)
    return len(true_ev) - len(used), extra


def run_flow(seq, frames_dets, removed, lines):
    info = motdata.SEQUENCES[seq]
    image = np.zeros((info.height, info.width, 3), np.uint8)
    pipes = [
        VehicleFlowPipeline(
            VehicleFlowRuleConfig(
                id=f"f-{ln.id}", line=ln.id, classes=("person",), hysteresis=FLOW_HYST
            ),
            ln,
            COCO_CLASSES,
        )
        for ln in lines
    ]
    totals = {ln.id: [0, 0] for ln in lines}
    events: dict[str, list[tuple[int, int, str, tuple[float, ...]]]] = {
        ln.id: [] for ln in lines
    }
    n = len(frames_dets)
    none = np.zeros(0, np.int64)
    # Trailing empty frames (as for loitering): a crossing the rule holds for a
    # moment (switch window, jump hold) at the very end is still decided.
    for f in range(1, n + 3 * int(info.fps)):
        fr = frame_at(seq, f, info.fps, image)
        det = frames_dets[f - 1] if f <= n else Detections.empty(True)
        for p, ln in zip(pipes, lines, strict=True):
            p.update(fr, det, removed[f - 1] if f <= n else none)
            for c in p.crossings:
                totals[ln.id][0 if c.direction == "in" else 1] += 1
                # The frame the crossing happened on (a held one is counted later).
                fc = min(max(int(round((c.mono - 1000.0) * info.fps)), 1), n)
                events[ln.id].append((fc, c.tracker_id, c.direction, c.bbox))
    return totals, events


def track_noisy(raw, n: int, fps: float, oracle: bool = False):
    """Per frame: tracked detections and removed ids for noisy detections ``raw``.

    ``oracle``: instead of the tracker, every true detection carries its
    ground-truth id and false positives are dropped (:func:`oracle_tracks`):
    perfect association on the same boxes and the same misses (the best any
    tracker could do with them).
    """
    from monitor.tracker import Tracker

    if oracle:
        return oracle_tracks(raw, n, fps)
    tracked, removed = [], []
    tracker = Tracker()
    for f in range(1, n + 1):
        tracked.append(tracker.update(motdata.as_detections(raw[f]), 1000.0 + f / fps))
        removed.append(np.asarray(tracker.removed_ids, np.int64))
    return tracked, removed


def crowded(gt, gid: int, frames: tuple[int, ...], within: float) -> bool:
    """Whether another ground-truth person's box centre is within ``within`` box
    sizes (x by ``gid``'s width, y by its height) of ``gid``'s on any of ``frames``
    (annotated people count whether the detector saw them or not)."""
    for f in frames:
        rows = gt.get(f, np.zeros((0, 5)))
        me = rows[rows[:, 0] == gid]
        if not len(me):
            continue
        x1, y1, x2, y2 = me[0, 1:5]
        other = rows[rows[:, 0] != gid]
        dx = ((other[:, 1] + other[:, 3]) - (x1 + x2)) / 2 / (x2 - x1)
        dy = ((other[:, 2] + other[:, 4]) - (y1 + y2)) / 2 / (y2 - y1)
        if (np.hypot(dx, dy) < within).any():
            return True
    return False


def oracle_tracks(
    raw, n: int, fps: float, gt=None, max_gap: int | None = None, crowd: float = 0.0
):
    """Perfect identities on noisy detections, optionally lost at detection gaps.

    Every true detection carries an id derived from its ground-truth id, false
    positives are dropped, and ids are removed 1.5 s after their last detection
    (the tracker's ``lost_buffer_s``). With ``max_gap``, a person detected again
    after more than ``max_gap`` frames without a detection gets a new id (an
    ideal tracker that never confuses two people but cannot bridge long gaps);
    with ``crowd > 0`` too, only when another person (``gt``) is within ``crowd``
    box sizes of them when they were last seen or when they reappear (an ideal
    motion-only tracker: long gaps are bridged wherever nobody else is near).

    Returns:
        ``(tracked, removed)`` per frame, as :func:`track_noisy`.
    """
    tracked, removed = [], []
    last: dict[int, float] = {}  # output id -> time of its last detection
    seen: dict[int, int] = {}  # ground-truth id -> frame of its last detection
    current: dict[int, int] = {}  # ground-truth id -> output id
    next_id = 1_000_000  # fresh ids, apart from ground-truth ones
    buffer_s = 1.5
    for f in range(1, n + 1):
        rows = raw[f][raw[f][:, 5] >= 0]
        gids = rows[:, 5].astype(np.int64).tolist()
        ids = []
        for g in gids:
            broken = (
                max_gap is not None
                and g in seen
                and f - seen[g] - 1 > max_gap
                and (crowd <= 0.0 or crowded(gt, g, (seen[g], f), crowd))
            )
            if broken:
                next_id += 1
                current[g] = next_id
            seen[g] = f
            ids.append(current.setdefault(g, g))
        tracked.append(
            Detections(
                xyxy=rows[:, :4],
                confidence=rows[:, 4],
                class_id=np.zeros(len(rows), np.int64),
                tracker_id=np.asarray(ids, np.int64),
            )
        )
        now = f / fps
        gone = [i for i, t in last.items() if now - t > buffer_s]
        for i in gone:
            del last[i]
        last.update(dict.fromkeys(ids, now))
        removed.append(np.asarray(gone, np.int64))
    return tracked, removed


def ground_truth(seq: str):
    """A sequence's ground truth as the rules see it.

    Returns:
        ``(gt, n, gt_frames, gt_removed, true_ev)``: rows per frame, the number of
        frames, ground-truth tracks per frame as tracked detections, the ids removed
        on each frame (the frame after their last one), and the true loitering
        events (the rule applied to the ground-truth tracks).
    """
    gt = motdata.load_gt(seq)
    n = max(gt)
    gt_frames = [gt_dets(gt[f]) for f in range(1, n + 1)]
    last = {int(r[0]): f for f in range(1, n + 1) for r in gt[f]}
    gt_removed = [
        np.array([i for i, lf in last.items() if lf == f - 1], np.int64)
        for f in range(1, n + 1)
    ]
    true_ev = run_loitering(seq, gt_frames, MOT_ZONES[seq], gt_removed)
    return gt, n, gt_frames, gt_removed, true_ev


def mot_part(seeds: list[int]) -> None:
    print("## Loitering events (MOT ground truth)\n")
    print(
        "| sequence | level | seeds | true events | predicted | TP | precision | recall |"
    )
    print("|---|---|---|---|---|---|---|---|")
    count_rows = []
    agg: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    tol_agg: dict[tuple[str, float], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    # Per level: loitering TP, #pred, #true; per (level, seq, line): counts in,
    # out, true in, true out (summed over seeds, as in the count table).
    ceiling: dict[str, list[int]] = defaultdict(lambda: [0] * 3)
    ceiling_counts: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0] * 4)
    for seq, info in motdata.SEQUENCES.items():
        gt, n, gt_frames, gt_removed, true_ev = ground_truth(seq)
        base = float(LOITER["min_dwell_s"])
        true_tol = {
            tol: tuple(
                run_loitering(
                    seq, gt_frames, MOT_ZONES[seq], gt_removed, base + sign * tol
                )
                for sign in (1, -1)
            )
            for tol in DWELL_TOL_S
        }
        size = (info.width, info.height)
        true_counts = {
            ln.id: true_crossings(gt, ln, size, FLOW_HYST) for ln in MOT_LINES[seq]
        }
        true_cross = {
            ln.id: true_crossing_events(gt, ln, size, FLOW_HYST)
            for ln in MOT_LINES[seq]
        }
        for level in motdata.LEVELS:
            tp = npred = ntrue = 0
            pred_counts = {ln.id: [0, 0] for ln in MOT_LINES[seq]}
            matched = {ln.id: [0, 0] for ln in MOT_LINES[seq]}  # missed, extra
            for seed in seeds:
                raw = motdata.noisy_detections(gt, level, seed, size)
                # Reference: the same detections with perfect identities.
                tracked, removed = track_noisy(raw, n, info.fps, oracle=True)
                pred_ev = run_loitering(seq, tracked, MOT_ZONES[seq], removed)
                fmap = track_gt_map(tracked, gt)
                ceil = ceiling[level]
                for k, v in enumerate(match_events(true_ev, pred_ev, fmap)):
                    ceil[k] += v
                totals, _ = run_flow(seq, tracked, removed, MOT_LINES[seq])
                for ln in MOT_LINES[seq]:
                    c = ceiling_counts[(level, seq, ln.id)]
                    c[0] += totals[ln.id][0]
                    c[1] += totals[ln.id][1]
                    c[2] += true_counts[ln.id][0]
                    c[3] += true_counts[ln.id][1]
                tracked, removed = track_noisy(raw, n, info.fps)
                pred_ev = run_loitering(seq, tracked, MOT_ZONES[seq], removed)
                fmap = track_gt_map(tracked, gt)
                a, b, c = match_events(true_ev, pred_ev, fmap)
                for tol, (req, acc) in true_tol.items():
                    for k, v in enumerate(match_tolerant(req, acc, pred_ev, fmap)):
                        tol_agg[(level, tol)][k] += v
                tp, npred, ntrue = tp + a, npred + b, ntrue + c
                totals, crossings = run_flow(seq, tracked, removed, MOT_LINES[seq])
                for k, v in totals.items():
                    pred_counts[k][0] += v[0]
                    pred_counts[k][1] += v[1]
                    miss, extra = match_crossings(
                        true_cross[k], crossings[k], gt, fmap, info.fps
                    )
                    matched[k][0] += miss
                    matched[k][1] += extra
            agg[level][0] += tp
            agg[level][1] += npred
            agg[level][2] += ntrue
            prec = tp / npred if npred else float("nan")
            rec = tp / ntrue if ntrue else float("nan")
            print(
                f"| {seq} | {level} | {len(seeds)} | {ntrue} | {npred} | {tp} | "
                f"{prec:.2f} | {rec:.2f} |"
            )
            for ln in MOT_LINES[seq]:
                t_in, t_out = true_counts[ln.id]
                k = len(seeds)
                count_rows.append(
                    (seq, level, ln.id, t_in * k, pred_counts[ln.id][0], t_out * k,
                     pred_counts[ln.id][1], *matched[ln.id])
                )  # fmt: skip
    for level, (tp, npred, ntrue) in agg.items():
        print(
            f"| **all** | {level} | {len(seeds)} | {ntrue} | {npred} | {tp} | "
            f"{tp / max(npred, 1):.2f} | {tp / max(ntrue, 1):.2f} |"
        )
    print(
        "\nWith a tolerance on the dwell threshold (both sequences; see "
        "match_tolerant):\n\n| level | tolerance s | predicted | of them acceptable "
        "| precision | required true events | found | recall |\n|---|---|---|---|---|---|---|---|"
    )
    for (level, tol), (ok, npred, found, nreq) in tol_agg.items():
        print(
            f"| {level} | ±{tol:.1f} | {npred} | {ok} | {ok / max(npred, 1):.2f} | "
            f"{nreq} | {found} | {found / max(nreq, 1):.2f} |"
        )
    print(
        "\nReference: the same noisy detections with perfect identities (each "
        "true detection carries its ground-truth id, false positives dropped; "
        "`track_noisy(oracle=True)`): what the detector's misses and jitter cost "
        "whatever the tracker. A ceiling for loitering; for counts only a reference "
        "(a person the annotators gave a new id after an occlusion counts once "
        "more here through the rule's id-switch handling):\n\n"
        "| level | loitering precision | loitering recall | count abs err | "
        "count rel err |\n|---|---|---|---|---|"
    )
    for level, (tp, npred, ntrue) in ceiling.items():
        err = true = 0
        for (lv, _, _), (p_in, p_out, t_in, t_out) in ceiling_counts.items():
            if lv == level:
                err += abs(p_in - t_in) + abs(p_out - t_out)
                true += t_in + t_out
        print(
            f"| {level} | {tp / max(npred, 1):.2f} | {tp / max(ntrue, 1):.2f} | "
            f"{err} | {err / max(true, 1):.1%} |"
        )
    print("\n## Line counts (MOT ground truth, person, summed over seeds)\n")
    print(
        "| sequence | level | line | true in | pred in | true out | pred out | abs err "
        "| rel err | missed | extra |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    tot: dict[str, list[int]] = defaultdict(lambda: [0] * 8)
    for seq, level, lid, ti, pi, to, po, miss, extra in count_rows:
        err = abs(pi - ti) + abs(po - to)
        for k, v in enumerate((ti, pi, to, po, err, ti + to, miss, extra)):
            tot[level][k] += v
        rel = err / (ti + to) if ti + to else float("nan")
        print(
            f"| {seq} | {level} | {lid} | {ti} | {pi} | {to} | {po} | {err} | {rel:.1%} "
            f"| {miss} | {extra} |"
        )
    for level, (ti, pi, to, po, err, true, miss, extra) in tot.items():
        print(
            f"| **all** | {level} | | {ti} | {pi} | {to} | {po} | {err} "
            f"| {err / max(true, 1):.1%} | {miss} | {extra} |"
        )


# --------------------------------------------------------------------- videos
VIDEO_LINES = {
    "road_traffic.mp4": LineConfig(
        id="road", start=(0.2, 0.55), end=(0.9, 0.55), in_direction="down"
    ),
    "bridge_traffic.mp4": LineConfig(
        id="bridge", start=(0.2, 0.6), end=(0.8, 0.6), in_direction="down"
    ),
}
# Hand counts (docs/rules.md: how they were made), vehicles only.
HAND_COUNTS: dict[str, tuple[int, int]] = {
    "road_traffic.mp4": (0, 36),  # 30 cars, 3 buses, 1 truck, 2 motorcycles
    "bridge_traffic.mp4": (1, 5),  # cars only; the bus starts below the line
}


def video_part(verbose: bool = False) -> None:
    import cv2

    from config.detector import DetectorConfig
    from monitor.detector import load_detector
    from monitor.tracker import Tracker

    print("\n## Real videos: vehicle line counts vs hand counts\n")
    print(
        "| video | frames | hand in | pipeline in | hand out | pipeline out | abs err | rel err | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    det = load_detector(DetectorConfig(models_dir=str(SHARED / "models")))
    vehicles = ("car", "bus", "truck", "motorcycle")
    for name, line in VIDEO_LINES.items():
        path = SHARED / "data" / "videos" / name
        if not path.exists():
            print(f"| {name} | missing | | | | | | | |")
            continue
        cap = cv2.VideoCapture(str(path))
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        tracker = Tracker()
        flow = VehicleFlowPipeline(
            VehicleFlowRuleConfig(id="f", line=line.id, classes=vehicles),
            line,
            det.class_names,
        )
        n = 0
        t0 = time.perf_counter()
        c_in = c_out = 0
        while True:
            ok, img = cap.read()
            if not ok:
                break
            n += 1
            mono = 1000.0 + n / fps
            out = tracker.update(det.detect(img), mono)
            flow.update(Frame(name[:20].replace(".", "-"), n, TS0 + n / fps, mono, img), out,
                        np.asarray(tracker.removed_ids, np.int64))  # fmt: skip
            for c in flow.crossings:
                c_in += c.direction == "in"
                c_out += c.direction == "out"
                if verbose:
                    print(
                        f"  {name} frame {n}: {c.class_name} {c.tracker_id} {c.direction}"
                    )
        secs = time.perf_counter() - t0
        h_in, h_out = HAND_COUNTS.get(name, (-1, -1))
        err = abs(c_in - h_in) + abs(c_out - h_out)
        rel = err / max(h_in + h_out, 1)
        print(
            f"| {name} | {n} | {h_in} | {c_in} | {h_out} | {c_out} | {err} | "
            f"{rel:.1%} | {secs:.0f} |"
        )
    product_part(vehicles)
    loiter_video_part()


def replay_parts(
    example: Any, cam: Any, path: Path, model: str, rate: float, det: Any = None
) -> tuple[Any, Any, Any]:
    """The product loop's parts for one pass over a video file (``hallmonitor
    replay``): ``cam`` reading ``path`` at ``rate`` detections/s with the detector
    ``model``; ``det`` (a loaded detector) is reused when it is that model.

    Returns:
        ``(camera, sink, parts)``: the camera as run, the sink collecting its
        events, and ``build_parts``' result (``parts.detector`` for the next run).
    """
    from bench_capacity import _ListSink

    from monitor.worker import build_parts

    app = example.model_copy(
        update={"detector": example.detector.model_copy(update={"model": model})}
    )
    cam = cam.model_copy(
        update={
            "detect_fps": rate,
            "source": cam.source.model_copy(
                update={"url": str(path), "loop": False, "realtime": False}
            ),
        }
    )
    if det is not None and det.model_name != model:
        det = None
    sink = _ListSink()
    parts = build_parts(app, cam, sink, replay=True, evidence=False, detector=det)
    return cam, sink, parts


def product_part(vehicles: tuple[str, ...]) -> None:
    """The same lines through the product's own loop (``hallmonitor replay``).

    ``build_parts`` + ``run_camera`` with the example config's detector, tracker and
    gating (regions: the detector sees crops around the line), at the example's
    5 detections/s and at every frame.
    """
    import threading

    from bench_counts import HAND_FRAMES, match_hand

    from config.loader import load_config
    from monitor.worker import run_camera

    example = load_config(ROOT / "config" / "campus.example.yaml")
    base = example.camera("road")
    print(
        "\nThe product loop (`hallmonitor replay`, config/campus.example.yaml: "
        f"gating {base.gating.mode}; its detector, and yolov8n_int8 in its place):\n"
    )
    print(
        "| model | video | classes | det/s | frames | detector plans | hand in | in "
        "| hand out | out | abs err | rel err | vs hand-counted frames (±1.6 s) | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")

    # The hand counts are road users: the two scooters on the road are counted
    # there. "vehicles" counts vehicle classes only (a scooter the model does not
    # call a motorcycle is missed); "line" counts the example rule's own classes,
    # persons included, so a scooter's rider can stand for it.
    class_sets = {"vehicles": vehicles, "line": base.rules.vehicle_flow[0].classes}
    runs = [
        (model, name, line, rate, label)
        for model in (example.detector.model, "yolov8n_int8")
        for name, line in VIDEO_LINES.items()
        for label in class_sets
        for rate in (5.0, 30.0)
        if (SHARED / "data" / "videos" / name).exists()
    ]
    det = None
    for model, name, line, rate, set_label in runs:
        path = SHARED / "data" / "videos" / name
        rule = base.rules.vehicle_flow[0].model_copy(
            update={"line": line.id, "classes": class_sets[set_label]}
        )
        cam = base.model_copy(
            update={
                "lines": (line,),
                "rules": base.rules.model_copy(update={"vehicle_flow": (rule,)}),
            }
        )
        cam, sink, parts = replay_parts(example, cam, path, model, rate, det)
        det = parts.detector
        flows = [p for p in parts.pipelines if isinstance(p, VehicleFlowPipeline)]
        seen: list[tuple[int, str]] = []  # (video frame, class) per crossing

        def obs(fr: Any, _ev: Any, flows: list[Any] = flows, seen: list = seen) -> None:
            seen.extend((fr.seq, c.class_name) for f in flows for c in f.crossings)

        t0 = time.perf_counter()
        stats = run_camera(cam, parts, threading.Event(), replay=True, observer=obs)
        secs = time.perf_counter() - t0
        parts.close()
        last: dict[Any, Any] = {}
        for e in sink.events:
            if e.kind == "vehicle_flow":
                last[e.event_id] = e
        c_in = sum(sum(e.payload.counts_in.values()) for e in last.values())
        c_out = sum(sum(e.payload.counts_out.values()) for e in last.values())
        h_in, h_out = HAND_COUNTS[name]
        err = abs(c_in - h_in) + abs(c_out - h_out)
        plans = ", ".join(f"{k} {v}" for k, v in sorted(stats.plans.items()))
        label = "every frame" if rate >= 25 else f"{rate:g}"
        # Crossing by crossing against the hand-counted frames (road only: the
        # frames are listed in bench_counts), so a false count cannot hide a miss.
        check = "-"
        if name in HAND_FRAMES:
            fps = 25.0
            n_x, n_m, x_f, m_f = match_hand(
                [f for f, _ in seen], HAND_FRAMES[name], 1.6 * fps
            )
            persons = [f for f, c in seen if c == "person"]
            check = f"missed {n_m} {m_f}, extra {n_x} {x_f}; persons at {persons}"
        print(
            f"| {model} | {name} | {set_label} | {label} | {stats.frames} | {plans} "
            f"| {h_in} | {c_in} | "
            f"{h_out} | {c_out} | {err} | {err / max(h_in + h_out, 1):.1%} | "
            f"{check} | {secs:.0f} |"
        )


def peer_tracks(run, raw, n: int, fps: float):
    """A peer tracker's per-frame output as tracked detections and removed ids.

    Peers report no removals: an id is removed once unseen for 1.5 s (our
    tracker's ``lost_buffer_s``), as for the oracle.
    """
    outs, _ = run([raw[f] for f in range(1, n + 1)], fps)
    tracked, removed = [], []
    last: dict[int, float] = {}
    for f, (ids, boxes) in enumerate(outs, start=1):
        ids = np.asarray(ids, np.int64)
        tracked.append(
            Detections(
                xyxy=np.asarray(boxes, np.float64).reshape(-1, 4),
                confidence=np.ones(len(ids)),
                class_id=np.zeros(len(ids), np.int64),
                tracker_id=ids,
            )
        )
        now = f / fps
        gone = [i for i, t in last.items() if now - t > 1.5]
        for i in gone:
            del last[i]
        last.update(dict.fromkeys(ids.tolist(), now))
        removed.append(np.asarray(gone, np.int64))
    return tracked, removed


def sv_line_counts(tracked, line: LineConfig, size) -> tuple[int, int]:
    """``(in, out)`` of supervision's ``LineZone`` (bottom-centre anchor) over
    tracked detections: the counting step of an Ultralytics + supervision script."""
    import supervision as sv

    w, h = size
    a = sv.Point(line.start[0] * w, line.start[1] * h)
    b = sv.Point(line.end[0] * w, line.end[1] * h)

    def zone():
        return sv.LineZone(
            start=a, end=b, triggering_anchors=[sv.Position.BOTTOM_CENTER]
        )

    # Which of sv's counters is our "in": walk a probe track across in our "in"
    # direction (our lines here are vertical with in = right).
    assert line.in_direction == "right"
    probe = zone()
    x0 = line.start[0] * w
    for x in (x0 - 40, x0 - 20, x0 + 20, x0 + 40):
        probe.trigger(
            sv.Detections(
                xyxy=np.array([[x - 5, 100.0, x + 5, 200.0]]),
                tracker_id=np.array([1]),
                class_id=np.array([0]),
            )
        )
    swap = probe.out_count == 1
    lz = zone()
    for det in tracked:
        if len(det) == 0:
            continue
        lz.trigger(
            sv.Detections(
                xyxy=det.xyxy.astype(np.float32),
                tracker_id=det.tracker_id,
                class_id=det.class_id,
            )
        )
    return (lz.out_count, lz.in_count) if swap else (lz.in_count, lz.out_count)


def rule_scores(
    seeds: list[int], levels: list[str], makers: dict[str, Any], with_sv: bool = False
) -> dict[tuple[str, str], list[int]]:
    """Our rules on the tracks of each ``makers`` entry, scored as the main tables.

    Args:
        seeds: Noise seeds.
        levels: Noise levels.
        makers: Name -> ``make(raw, n, fps, gt) -> (tracked, removed)``.
        with_sv: Also count with supervision's ``LineZone`` on the same tracks.

    Returns:
        ``(name, level) -> [loitering TP, #pred, #true, count error, #true
        crossings, LineZone count error]``: strict loitering matching; count error =
        |pred - true| per sequence, line and direction, summed over seeds.
    """
    agg: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * 6)
    for seq, info in motdata.SEQUENCES.items():
        gt, n, _, _, true_ev = ground_truth(seq)
        size = (info.width, info.height)
        true_counts = {
            ln.id: true_crossings(gt, ln, size, FLOW_HYST) for ln in MOT_LINES[seq]
        }
        for level in levels:
            for name, make in makers.items():
                pred = {ln.id: [0, 0] for ln in MOT_LINES[seq]}
                pred_sv = {ln.id: [0, 0] for ln in MOT_LINES[seq]}
                a = agg[(name, level)]
                for seed in seeds:
                    raw = motdata.noisy_detections(gt, level, seed, size)
                    tracked, removed = make(raw, n, info.fps, gt)
                    pred_ev = run_loitering(seq, tracked, MOT_ZONES[seq], removed)
                    fmap = track_gt_map(tracked, gt)
                    for k, v in enumerate(match_events(true_ev, pred_ev, fmap)):
                        a[k] += v
                    totals, _ = run_flow(seq, tracked, removed, MOT_LINES[seq])
                    for ln in MOT_LINES[seq]:
                        pred[ln.id][0] += totals[ln.id][0]
                        pred[ln.id][1] += totals[ln.id][1]
                        if with_sv:
                            c_in, c_out = sv_line_counts(tracked, ln, size)
                            pred_sv[ln.id][0] += c_in
                            pred_sv[ln.id][1] += c_out
                k = len(seeds)
                for ln in MOT_LINES[seq]:
                    t_in, t_out = true_counts[ln.id]
                    a[3] += abs(pred[ln.id][0] - t_in * k)
                    a[3] += abs(pred[ln.id][1] - t_out * k)
                    a[4] += (t_in + t_out) * k
                    a[5] += abs(pred_sv[ln.id][0] - t_in * k)
                    a[5] += abs(pred_sv[ln.id][1] - t_out * k)
    return agg


def peer_part(seeds: list[int]) -> None:
    """The same rules on peer trackers' tracks, and supervision's LineZone.

    Every tracker sees the same noisy detections; loitering and counts are scored
    as in the main tables (:func:`rule_scores`).
    """
    from bench_tracking import runners

    found, missing = runners()
    try:
        import supervision  # noqa: F401

        has_sv = True
    except ImportError:
        has_sv = False

    def maker(name: str, run: Any) -> Any:
        if name == "hallmonitor":
            return lambda raw, n, fps, _gt: track_noisy(raw, n, fps)
        return lambda raw, n, fps, _gt: peer_tracks(run, raw, n, fps)

    makers = {name: maker(name, run) for name, run in found.items()}
    agg = rule_scores(seeds, list(motdata.LEVELS), makers, with_sv=has_sv)
    print(
        f"\n## Peer trackers under the same rules (MOT, seeds {seeds[0]}-{seeds[-1]})\n"
    )
    if missing:
        print(f"Not installed: {', '.join(missing)}.\n")
    print(
        "| tracker | level | loitering precision | loitering recall | count err "
        "(our line rule) | count err (supervision LineZone) |\n|---|---|---|---|---|---|"
    )
    for level in motdata.LEVELS:
        for name in found:
            tp, npred, ntrue, err, true, err_sv = agg[(name, level)]
            sv_cell = f"{err_sv / max(true, 1):.1%}" if has_sv else "n/a"
            print(
                f"| {name} | {level} | {tp / max(npred, 1):.2f} | "
                f"{tp / max(ntrue, 1):.2f} | {err / max(true, 1):.1%} | {sv_cell} |"
            )


#: Ideal trackers of :func:`ceiling_part`: name -> ``oracle_tracks`` arguments.
CEILING_TRACKERS: dict[str, dict[str, Any]] = {
    "perfect identities": {},
    **{f"perfect, new id after a gap > {g} frames": {"max_gap": g} for g in (10, 6, 3)},
    **{
        f"perfect up to {g} frames, longer gaps bridged unless someone is within "
        "1 box": {"max_gap": g, "crowd": 1.0}
        for g in (10, 6, 3)
    },
}


def ceiling_part(seeds: list[int], level: str = "hard") -> None:
    """What identity quality the targets need at one noise level.

    Our rules on the tracks of ideal trackers that see the same noisy detections
    (:data:`CEILING_TRACKERS`, :func:`oracle_tracks`): perfect identities; perfect
    identities that are lost (new id) whenever a person goes undetected for more
    than N frames; and the same, but bridging a longer gap wherever nobody else is
    within one box size (what an ideal tracker without appearance could do).
    """
    makers: dict[str, Any] = {
        "hallmonitor": lambda raw, n, fps, _gt: track_noisy(raw, n, fps)
    }
    for name, kw in CEILING_TRACKERS.items():
        makers[name] = lambda raw, n, fps, gt, kw=kw: oracle_tracks(
            raw, n, fps, gt, **kw
        )
    agg = rule_scores(seeds, [level], makers)
    print(
        f"\n## What the targets need at {level} (seeds {seeds[0]}-{seeds[-1]}, "
        "25 frames/s)\n\n| tracks | loitering precision | loitering recall | "
        "count err | all three targets |\n|---|---|---|---|---|"
    )
    for name in makers:
        tp, npred, ntrue, err, true, _ = agg[(name, level)]
        p, r, e = tp / max(npred, 1), tp / max(ntrue, 1), err / max(true, 1)
        met = "met" if p >= 0.9 and r >= 0.9 and e <= 0.05 else "missed"
        print(f"| {name} | {p:.3f} | {r:.3f} | {e:.1%} | {met} |")


def gap_part(seeds: list[int], level: str = "hard") -> None:
    """Where a level's loitering and count errors come from (docs/rules.md).

    Per true loitering event: how often our tracker and the perfect-identity
    reference (``track_noisy(oracle=True)``) miss it. Per unmatched predicted
    event: a *second event* (its majority ground-truth id owns a true event in the
    zone, overlapping it, that another prediction already matched: the person got
    a new track after a neighbour's track took their box), *no truth* (no true event
    of that id overlaps it), or *unmapped* (its boxes never overlapped a
    ground-truth box by IoU >= 0.5).
    """
    print(f"\n## Where the {level}-level errors are (seeds {seeds[0]}-{seeds[-1]})\n")
    print(
        "| sequence | true event (zone, ids, frames) | missed: tracker | "
        "missed: reference |\n|---|---|---|---|"
    )
    kinds: dict[str, dict[str, int]] = {}
    for seq, info in motdata.SEQUENCES.items():
        gt, n, _, _, true_ev = ground_truth(seq)
        size = (info.width, info.height)
        missed = {False: [0] * len(true_ev), True: [0] * len(true_ev)}
        k = kinds.setdefault(seq, defaultdict(int))
        for seed in seeds:
            raw = motdata.noisy_detections(gt, level, seed, size)
            for oracle in (False, True):
                tracked, removed = track_noisy(raw, n, info.fps, oracle=oracle)
                pred_ev = run_loitering(seq, tracked, MOT_ZONES[seq], removed)
                fmap = track_gt_map(tracked, gt)
                used, hit = match_pairs(true_ev, pred_ev, fmap)
                for t in range(len(true_ev)):
                    missed[oracle][t] += t not in used
                if oracle:
                    continue
                for pi, p in enumerate(pred_ev):
                    if pi in hit:
                        continue
                    gid = event_gt_id(p, fmap)
                    if gid is None:
                        k["unmapped"] += 1
                        continue
                    owned = [
                        t
                        for t, ev in enumerate(true_ev)
                        if ev["zone"] == p["zone"]
                        and gid in ev["tids"]
                        and ev["f0"] <= p["f1"]
                        and p["f0"] <= ev["f1"]
                    ]
                    k["second event" if owned else "no truth"] += 1
        for t, ev in enumerate(true_ev):
            ids = "+".join(str(i) for i in sorted(ev["tids"]))
            print(
                f"| {seq} | {ev['zone']}, {ids}, {ev['f0']}-{ev['f1']} of {n} | "
                f"{missed[False][t]} | {missed[True][t]} |"
            )
    print("\n| sequence | unmatched predicted events | count |\n|---|---|---|")
    for seq, k in kinds.items():
        for kind in ("second event", "no truth", "unmapped"):
            print(f"| {seq} | {kind} | {k[kind]} |")


def perf_part() -> None:
    """Per-frame cost of all four rule kinds on one camera vs the number of tracks."""
    from config.schema import CameraConfig
    from pipelines.factory import build_pipelines

    cam = CameraConfig.model_validate(
        {
            "id": "perf",
            "source": {"url": "x.mp4"},
            "zones": [{"id": "z", "polygon": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]}],
            "lines": [{"id": "l", "start": [0.0, 0.5], "end": [1.0, 0.5]}],
            "rules": {
                "loitering": [{"id": "lo", "zone": "z", "classes": ["person", "car"]}],
                "crowding": [{"id": "cr", "zone": "z", "classes": ["person", "car"]}],
                "vehicle_flow": [{"id": "vf", "line": "l", "classes": ["person", "car"]}],
                "occupancy": [{"id": "oc", "lines": ["vf"], "classes": ["person", "car"]}],
            },
        }
    )  # fmt: skip
    print(
        "\n## Rule cost per frame (all four rules, 1280x720, objects drifting down)\n"
    )
    print("| tracks | µs/frame | events |")
    print("|---|---|---|")
    image = np.zeros((720, 1280, 3), np.uint8)
    rng = np.random.default_rng(0)
    for n in (0, 10, 100, 500):
        pipes = build_pipelines(cam, COCO_CLASSES)
        xy = rng.uniform([0, 0], [1240, 600], (n, 2))
        ids = np.arange(1, n + 1)
        events = 0
        frames = 500
        t0 = time.perf_counter()
        for f in range(frames):
            xy[:, 1] = (xy[:, 1] + 2.0) % 600
            det = Detections(
                xyxy=np.column_stack([xy, xy + 40]),
                confidence=np.full(n, 0.9),
                class_id=np.where(ids % 2 == 0, 0, 2),
                tracker_id=ids,
            )
            fr = Frame("perf", f, TS0 + f / 10, 1000.0 + f / 10, image)
            for p in pipes:
                events += len(p.update(fr, det, np.zeros(0, np.int64)))
        us = (time.perf_counter() - t0) / frames * 1e6
        print(f"| {n} | {us:.0f} | {events} |")


# Hand check of concourse_people.avi (docs/rules.md, "Real video: loitering"): four
# people stand in the example's west-benches zone from the first frame to the last
# (13.6 s); their feet stay inside this box (px, 1280x720). Walkers pass through
# the zone's edges without stopping.
LOITER_VIDEO = "concourse_people.avi"
GROUP_FEET_BOX = (220.0, 400.0, 345.0, 470.0)
GROUP_SIZE = 4


def loiter_video_score(
    starts: list[tuple[float, float]],
    timeline: list[tuple[float, int]],
    threshold_s: float,
) -> dict[str, float]:
    """Score loitering events against the hand check of :data:`LOITER_VIDEO`.

    Args:
        starts: ``(x, y)`` per ``start`` event: the bottom-centre of its box (px).
        timeline: ``(t, open events)`` per processed frame.
        threshold_s: The rule's ``min_dwell_s``: from then on all four people
            should have an open event.

    Returns:
        ``events``, ``on_group`` (starts whose anchor is in :data:`GROUP_FEET_BOX`),
        ``elsewhere``, ``mean_open`` (open events averaged over frames from
        ``threshold_s`` on; truth :data:`GROUP_SIZE`), ``all_open`` (share of those
        frames with every person covered, i.e. ``>= GROUP_SIZE`` open).
    """
    x0, y0, x1, y1 = GROUP_FEET_BOX
    on = sum(1 for x, y in starts if x0 <= x <= x1 and y0 <= y <= y1)
    after = [c for t, c in timeline if t >= threshold_s]
    n = max(len(after), 1)
    return {
        "events": float(len(starts)),
        "on_group": float(on),
        "elsewhere": float(len(starts) - on),
        "mean_open": sum(min(c, GROUP_SIZE) for c in after) / n,
        "all_open": sum(c >= GROUP_SIZE for c in after) / n,
    }


def loiter_video_run(
    example: Any, path: Path, model: str, rate: float, grace: float, det: Any = None
) -> tuple[list[tuple[float, float]], list[tuple[float, int]], list[Any], Any]:
    """The example's concourse loitering rule through the product loop.

    Args:
        example: The loaded example config (``config/campus.example.yaml``).
        path: The video.
        model: Detector model name.
        rate: Detections per second.
        grace: The rule's ``grace_s``.
        det: A loaded detector of ``model`` to reuse, or None.

    Returns:
        ``(starts, timeline, events, detector)``: the ``(x, y)`` box bottom-centre
        (px) of each ``start`` event, ``(seconds since the first frame, open
        events)`` per processed frame, all loitering events, and the detector.
    """
    import threading

    from monitor.worker import run_camera

    base = example.camera("concourse")
    rule = base.rules.loitering[0].model_copy(
        update={"schedules": (), "grace_s": grace}
    )
    cam = base.model_copy(
        update={
            "rules": base.rules.model_copy(
                update={"loitering": (rule,), "crowding": ()}
            )
        }
    )
    cam, sink, parts = replay_parts(example, cam, path, model, rate, det)
    timeline: list[tuple[float, int]] = []
    open_ids: set[Any] = set()
    first: list[float] = []

    def obs(fr: Any, evs: Any) -> None:
        if not first:
            first.append(fr.mono)
        for e in evs:
            if e.kind != "loitering":
                continue
            if e.state is EventState.START:
                open_ids.add(e.event_id)
            elif e.state is EventState.END:
                open_ids.discard(e.event_id)
        timeline.append((fr.mono - first[0], len(open_ids)))

    try:
        run_camera(cam, parts, threading.Event(), replay=True, observer=obs)
    finally:
        parts.close()
    events = [e for e in sink.events if e.kind == "loitering"]
    starts = [
        (
            0.5 * (e.payload.bbox_xyxy[0] + e.payload.bbox_xyxy[2]),
            e.payload.bbox_xyxy[3],
        )
        for e in events
        if e.state is EventState.START
    ]
    return starts, timeline, events, parts.detector


def sv_loiter_script(
    outs: list[tuple[np.ndarray, np.ndarray]],
    polygon_px: np.ndarray,
    timer_fps: float,
    video_fps: float,
    threshold_s: float,
) -> tuple[list[tuple[float, float]], list[tuple[float, int]]]:
    """The loitering step of an Ultralytics + supervision script, on peer tracks.

    As in supervision's "time in zone" example: ``sv.PolygonZone`` (bottom-centre
    anchor) picks the tracks in the zone, and a frame-count timer gives each tracker
    id ``(frames since the id was first in the zone) / timer_fps`` seconds; an id
    alerts once, the first time its time reaches ``threshold_s``. The timer never
    resets (an id that leaves keeps its start) and an id switch starts from zero.

    Args:
        outs: Per frame ``(ids (K,), boxes (K, 4))`` from a peer tracker.
        polygon_px: ``(V, 2)`` zone in pixels.
        timer_fps: The fps the script's timer divides by (``sv.VideoInfo`` reads it
            from the file header).
        video_fps: The video's real frame rate (for the timeline only).
        threshold_s: Seconds in the zone that alert.

    Returns:
        ``(starts, timeline)`` as :func:`loiter_video_score` takes them; "open" =
        alerted ids in the zone on that frame.
    """
    import supervision as sv

    zone = sv.PolygonZone(
        polygon=np.round(polygon_px).astype(int),
        triggering_anchors=(sv.Position.BOTTOM_CENTER,),
    )
    first: dict[int, int] = {}
    alerted: set[int] = set()
    starts: list[tuple[float, float]] = []
    timeline: list[tuple[float, int]] = []
    for f, (ids, boxes) in enumerate(outs, start=1):
        det = sv.Detections(
            xyxy=np.asarray(boxes, np.float64).reshape(-1, 4),
            tracker_id=np.asarray(ids, np.int64),
        )
        inz = det[zone.trigger(det)] if len(det) else det
        n_open = 0
        for tid, box in zip(inz.tracker_id, inz.xyxy, strict=True):
            tid = int(tid)
            start = first.setdefault(tid, f)
            if (f - start) / timer_fps >= threshold_s:
                n_open += 1
                if tid not in alerted:
                    alerted.add(tid)
                    starts.append((0.5 * (box[0] + box[2]), float(box[3])))
        timeline.append(((f - 1) / video_fps, n_open))
    return starts, timeline


def loiter_video_part() -> None:
    """Loitering on real video: the product loop on :data:`LOITER_VIDEO`."""
    from config.loader import load_config

    path = SHARED / "data" / "videos" / LOITER_VIDEO
    if not path.exists():
        print(f"\n{LOITER_VIDEO} missing: no real-video loitering table")
        return
    example = load_config(ROOT / "config" / "campus.example.yaml")
    rule0 = example.camera("concourse").rules.loitering[0]
    print(
        f"\n## Real video: loitering ({LOITER_VIDEO}, zone {rule0.zone}, "
        f"min_dwell_s {rule0.min_dwell_s:g}, schedules off)\n\n"
        f"Truth (hand check): {GROUP_SIZE} people stand in the zone for the whole "
        f"clip, so {GROUP_SIZE} events, all open from {rule0.min_dwell_s:g} s to the "
        "end; walkers raise none.\n"
    )
    print(
        "| model | det/s | grace_s | events | on the group | elsewhere | mean open "
        f"events ({GROUP_SIZE} = all) | share of time all {GROUP_SIZE} open | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    det = None
    for model in (example.detector.model, "yolov8n_int8"):
        for rate in (5.0, 25.0):
            for grace in (1.5, 3.0):  # 1.5: the example before session 6
                t_run = time.perf_counter()
                starts, timeline, _, det = loiter_video_run(
                    example, path, model, rate, grace, det
                )
                secs = time.perf_counter() - t_run
                sc = loiter_video_score(starts, timeline, rule0.min_dwell_s)
                print(
                    f"| {model} | {rate:g} | {grace:g} | {sc['events']:.0f} | "
                    f"{sc['on_group']:.0f} | {sc['elsewhere']:.0f} | "
                    f"{sc['mean_open']:.2f} | {sc['all_open']:.2f} | {secs:.0f} |"
                )
    loiter_video_peers(example, path, rule0.min_dwell_s)


def loiter_video_peers(example: Any, path: Path, threshold_s: float) -> None:
    """Peer rows: each peer tracker of ``bench_tracking`` on the same video's
    YOLOX-Nano person detections (every frame), then :func:`sv_loiter_script`."""
    import cv2
    from bench_tracking import cached_detections, runners

    try:
        import supervision  # noqa: F401
    except ImportError:
        print("\n(supervision not installed: no peer rows)")
        return
    found, _ = runners()
    dets, header_fps = cached_detections(LOITER_VIDEO)
    cap = cv2.VideoCapture(str(path))
    stamps = []
    for _ in range(3):
        cap.grab()
        stamps.append(cap.get(cv2.CAP_PROP_POS_MSEC))
    # The frames' own timestamps (the product's clock): 40 ms apart in this file,
    # while its header claims 50 fps.
    true_fps = 1000.0 / max(stamps[2] - stamps[1], 1.0)
    w, h = (
        int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
        int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
    )
    cap.release()
    zone = next(z for z in example.camera("concourse").zones if z.id == "west-benches")
    poly = np.asarray(zone.polygon, np.float64) * np.array([w, h], np.float64)
    print(
        "\nPeers: the loitering step of an Ultralytics + supervision script "
        "(`sv.PolygonZone` + the frame-count timer of supervision's time-in-zone "
        f"example, one alert per id) on each peer tracker's tracks, YOLOX-Nano "
        f"person detections at every frame; timer fps = the header's {header_fps:g} "
        f"(what `sv.VideoInfo` reports) or the frames' real {true_fps:g}:\n"
    )
    print(
        "| tracker | timer fps | events | on the group | elsewhere | mean open events "
        f"({GROUP_SIZE} = all) | share of time all {GROUP_SIZE} open |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, run in found.items():
        if name == "hallmonitor":
            continue
        outs, _ = run(dets, true_fps)
        for timer_fps in (header_fps, true_fps):
            starts, timeline = sv_loiter_script(
                outs, poly, timer_fps, true_fps, threshold_s
            )
            sc = loiter_video_score(starts, timeline, threshold_s)
            print(
                f"| {name} | {timer_fps:g} | {sc['events']:.0f} | {sc['on_group']:.0f} "
                f"| {sc['elsewhere']:.0f} | {sc['mean_open']:.2f} | "
                f"{sc['all_open']:.2f} |"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--skip-video", action="store_true")
    ap.add_argument("--skip-mot", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="list video crossings")
    ap.add_argument("--skip-perf", action="store_true")
    ap.add_argument(
        "--peers",
        action="store_true",
        help="also run peer trackers (bench_tracking) and supervision's LineZone",
    )
    ap.add_argument(
        "--gap",
        metavar="LEVEL",
        choices=sorted(motdata.LEVELS),
        help="also list where that level's loitering errors come from",
    )
    ap.add_argument(
        "--ceiling",
        metavar="LEVEL",
        choices=sorted(motdata.LEVELS),
        help="also score ideal trackers at that level: what the targets need",
    )
    args = ap.parse_args()
    if not args.skip_mot:
        mot_part(args.seeds)
    if args.peers:
        peer_part(args.seeds)
    if args.gap:
        gap_part(args.seeds, args.gap)
    if args.ceiling:
        ceiling_part(args.seeds, args.ceiling)
    if not args.skip_perf:
        perf_part()
    if not args.skip_video:
        video_part(args.verbose)


if __name__ == "__main__":
    main()
