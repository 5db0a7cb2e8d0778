"""Tracking benchmark: hallmonitor Tracker vs peer trackers on identical detections.

Ground truth: TUD-Campus and TUD-Stadtmitte from the motmetrics wheel. Detections:
``scripts/motdata.py`` noise model at three levels (seeded, documented there).
Every tracker gets the same detections, converted to its native input type before
timing, so ``fps`` measures the tracking step alone (``update`` calls only, process
CPU time so that other jobs on a shared machine distort it less; best of ``--repeat``
round-robin runs). Metrics: motmetrics (MOTA, IDF1, ID switches; IoU >= 0.5) and
trackeval HOTA when trackeval is installed.

Peers (each skipped with a note when not installed): roboflow ``trackers``
(ByteTrack, SORT), ``norfair`` (IoU distance), ``motpy``. Buffers are set to the
same 1.5 s (= 37 frames at 25 fps) for every tracker; other parameters are each
library's defaults.

``--step N`` feeds every tracker every N-th frame only (timestamps at 25/N per
second) and scores on those frames: ``--step 5`` is the product's 5 detections/s.
``--ours-only`` skips the peers and the real-video table (accuracy is
deterministic; use it to compare variants of our tracker, with ``--set
FIELD=VALUE`` for ``TrackerConfig`` fields).

Usage: ``python scripts/bench_tracking.py [--seeds 0 1 2] [--repeat 3] [--step 5]``
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import motdata  # noqa: E402

from config.tracker import TrackerConfig  # noqa: E402
from monitor.tracker import Tracker  # noqa: E402
from monitor.types import Detections  # noqa: E402

FPS = 25.0
BUFFER_S = 1.5
BUFFER_FRAMES = int(round(BUFFER_S * FPS))

# A runner takes per-frame detections (K, >=5) and returns
# (per-frame outputs as (ids (M,), boxes (M, 4)), seconds spent in update calls).
Output = list[tuple[np.ndarray, np.ndarray]]
Runner = Callable[..., tuple[Output, float]]


#: ``--match-iou`` override for our tracker (None: TrackerConfig's default).
MATCH_IOU: float | None = None
#: ``--set`` overrides of our tracker's ``TrackerConfig`` fields.
OVERRIDES: dict[str, Any] = {}


def run_ours(frames: list[np.ndarray], fps: float = FPS) -> tuple[Output, float]:
    inputs = [motdata.as_detections(f) for f in frames]
    over = dict(OVERRIDES)
    if MATCH_IOU is not None:
        over["match_iou"] = MATCH_IOU
    tr = Tracker(TrackerConfig(**over))
    outs: list[Detections] = []
    t0 = time.process_time()
    for i, d in enumerate(inputs):
        outs.append(tr.update(d, i / fps))
    el = time.process_time() - t0
    return [(o.tracker_id, o.xyxy) for o in outs], el  # type: ignore[misc]


def _roboflow(kind: str) -> Runner | None:
    try:
        import supervision as sv
        from trackers import ByteTrackTracker, SORTTracker
    except ImportError:
        return None

    def run(frames: list[np.ndarray], fps: float = FPS) -> tuple[Output, float]:
        inputs = [
            sv.Detections(
                xyxy=f[:, :4].astype(np.float32),
                confidence=f[:, 4].astype(np.float32),
                class_id=np.zeros(len(f), dtype=int),
            )
            for f in frames
        ]
        cls = ByteTrackTracker if kind == "bytetrack" else SORTTracker
        tr = cls(lost_track_buffer=int(round(BUFFER_S * 30)), frame_rate=fps)
        tr.reset()
        res = []
        t0 = time.process_time()
        for d in inputs:
            res.append(tr.update(d))
        el = time.process_time() - t0
        outs = []
        for r in res:
            tid = np.asarray(r.tracker_id, dtype=np.int64)
            keep = tid >= 0
            outs.append((tid[keep], np.asarray(r.xyxy)[keep]))
        return outs, el

    return run


def _norfair() -> Runner | None:
    try:
        import norfair
    except ImportError:
        return None

    def run(frames: list[np.ndarray], fps: float = FPS) -> tuple[Output, float]:
        buf = int(round(BUFFER_S * fps))
        inputs = [
            [
                norfair.Detection(
                    points=r[:4].reshape(2, 2), scores=np.array([r[4], r[4]])
                )
                for r in f
            ]
            for f in frames
        ]
        tr = norfair.Tracker(
            distance_function="iou",
            distance_threshold=0.7,
            hit_counter_max=buf,
        )
        res = []
        t0 = time.process_time()
        for d in inputs:
            res.append(
                [(o.id, o.estimate.reshape(4).copy()) for o in tr.update(detections=d)]
            )
        el = time.process_time() - t0
        outs = []
        for r in res:
            ids = np.array([x[0] for x in r], dtype=np.int64)
            boxes = np.array([x[1] for x in r]).reshape(-1, 4)
            outs.append((ids, boxes))
        return outs, el

    return run


def _motpy() -> Runner | None:
    try:
        from motpy import Detection as MDet
        from motpy import MultiObjectTracker
    except ImportError:
        return None

    def run(frames: list[np.ndarray], fps: float = FPS) -> tuple[Output, float]:
        buf = int(round(BUFFER_S * fps))
        inputs = [[MDet(box=r[:4], score=float(r[4])) for r in f] for f in frames]
        tr = MultiObjectTracker(
            dt=1 / fps,
            tracker_kwargs={"max_staleness": buf},
            active_tracks_kwargs={"min_steps_alive": 2, "max_staleness": 1},
        )
        res = []
        t0 = time.process_time()
        for d in inputs:
            res.append(tr.step(detections=d))
        el = time.process_time() - t0
        idmap: dict[str, int] = {}
        outs = []
        for r in res:
            ids = np.array(
                [idmap.setdefault(t.id, len(idmap) + 1) for t in r], dtype=np.int64
            )
            boxes = np.array([t.box for t in r]).reshape(-1, 4)
            outs.append((ids, boxes))
        return outs, el

    return run


def runners() -> tuple[dict[str, Runner], list[str]]:
    found: dict[str, Runner] = {"hallmonitor": run_ours}
    missing = []
    for name, make in (
        ("rf-bytetrack", lambda: _roboflow("bytetrack")),
        ("rf-sort", lambda: _roboflow("sort")),
        ("norfair", _norfair),
        ("motpy", _motpy),
    ):
        r = make()
        if r is None:
            missing.append(name)
        else:
            found[name] = r
    return found, missing


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from monitor.assignment import iou_matrix

    return iou_matrix(a.reshape(-1, 4), b.reshape(-1, 4))


def clear_idf1(gt: dict[int, np.ndarray], outs: Output) -> dict[str, float]:
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=True)
    for f, (ids, boxes) in zip(sorted(gt), outs, strict=True):
        g = gt[f]
        sim = iou(g[:, 1:], boxes)
        dist = np.where(sim >= 0.5, 1.0 - sim, np.nan)
        acc.update(g[:, 0].astype(int), ids.astype(int), dist)
    mh = mm.metrics.create()
    s = mh.compute(acc, metrics=["mota", "idf1", "num_switches"], name="x")
    return {
        "MOTA": float(s["mota"].iloc[0]),
        "IDF1": float(s["idf1"].iloc[0]),
        "IDsw": int(s["num_switches"].iloc[0]),
    }


def hota(gt: dict[int, np.ndarray], outs: Output) -> float | None:
    try:
        from trackeval.metrics import HOTA
    except ImportError:
        return None
    gt_ids_all = np.unique(np.concatenate([g[:, 0] for g in gt.values()])).astype(int)
    tr_ids_all = np.unique(np.concatenate([o[0] for o in outs] + [np.zeros(0)]))
    gmap = {v: i for i, v in enumerate(gt_ids_all)}
    tmap = {v: i for i, v in enumerate(tr_ids_all.astype(int))}
    data: dict[str, Any] = {
        "num_timesteps": len(outs),
        "num_gt_ids": len(gmap),
        "num_tracker_ids": len(tmap),
        "num_gt_dets": 0,
        "num_tracker_dets": 0,
        "gt_ids": [],
        "tracker_ids": [],
        "similarity_scores": [],
    }
    for f, (ids, boxes) in zip(sorted(gt), outs, strict=True):
        g = gt[f]
        data["gt_ids"].append(np.array([gmap[int(i)] for i in g[:, 0]], dtype=int))
        data["tracker_ids"].append(np.array([tmap[int(i)] for i in ids], dtype=int))
        data["similarity_scores"].append(iou(g[:, 1:], boxes))
        data["num_gt_dets"] += len(g)
        data["num_tracker_dets"] += len(ids)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = HOTA().eval_sequence(data)
    return float(np.mean(res["HOTA"]))


def bench_30_objects(n_frames: int = 2000, repeat: int = 5) -> float:
    """Best CPU ms per update() for 30 moving objects (all matched every frame)."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1800, (30, 2))
    dets = []
    for f in range(n_frames):
        xy = np.concatenate([base + f * 3, base + f * 3 + [40, 80]], 1)
        xy += rng.normal(0, 1, (30, 4))
        dets.append(Detections(xy, np.full(30, 0.9), np.zeros(30, int)))
    best = float("inf")
    for _ in range(repeat):
        tr = Tracker()
        t0 = time.process_time()
        for f, d in enumerate(dets):
            tr.update(d, f / 25)
        best = min(best, (time.process_time() - t0) / n_frames * 1e3)
    return best


SHARED = Path(__file__).resolve().parents[2] / "shared"
REAL_VIDEOS = (
    "indoor_person.mp4",
    "street_pedestrians_1080p.mp4",
    "concourse_people.avi",
)


def cached_detections(video: str, model: str = "yolox_nano") -> tuple[list, float]:
    """Per-frame ``(K, 6)`` person rows ``[x1, y1, x2, y2, score, class]`` from the
    real detector (score >= 0.1 so the low-score stage has input), cached under
    /tmp so every tracker and every run sees identical input; and the video fps."""
    import cv2

    cache = Path("/tmp") / f"hallmonitor_dets_{Path(video).stem}_{model}.npz"
    path = SHARED / "data" / "videos" / video
    cap = cv2.VideoCapture(str(path))
    fps = float(cap.get(cv2.CAP_PROP_FPS)) or 25.0
    if cache.exists():
        cap.release()
        z = np.load(cache)
        return [z[k] for k in sorted(z.files, key=int)], fps
    from config.detector import DetectorConfig
    from monitor.detector import load_detector

    det = load_detector(
        DetectorConfig(
            model=model,
            models_dir=str(SHARED / "models"),
            score_threshold=0.1,
            classes=("person",),
        )
    )
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        d = det.detect(img)
        frames.append(
            np.column_stack([d.xyxy, d.confidence, d.class_id]).astype(np.float64)
        )
    cap.release()
    np.savez_compressed(cache, **{str(i): f for i, f in enumerate(frames)})
    return frames, fps


# Stretches inspected by eye (frames, half-open) and the people visible in them.
# indoor_person: one man in a white shirt enters left at ~frame 10, walks right and
# away to the back of the room, partly hidden by a rack at ~140-165 (detector scores
# drop to 0.16); a second man (dark jacket) enters at the right edge at ~frame 170.
# street_pedestrians / concourse_people: a dozen or more people at a time, coming
# and going; not counted, the id totals are only compared between trackers.
STRETCHES = {
    "indoor_person.mp4": [((0, 166), 1), ((0, 182), 2)],
    "street_pedestrians_1080p.mp4": [((0, 302), None)],  # too many to count by eye
    "concourse_people.avi": [((0, 341), None)],
}


def real_videos(found: dict[str, Runner]) -> None:
    """Distinct person ids per tracker on the real detector's output."""
    print(
        "\n| video | frames | people (by eye) | tracker | distinct ids | ids/person |"
    )
    print("|---|---|---|---|---|---|")
    for video in REAL_VIDEOS:
        try:
            frames, fps = cached_detections(video)
        except Exception as exc:  # noqa: BLE001 - report and go on
            print(f"| {video} | - | - | skipped: {exc} | | |")
            continue
        persons = [f[f[:, 5] == 0][:, :5] for f in frames]
        for name, run in found.items():
            outs, _ = run(persons, fps)
            for (a, b), people in STRETCHES[video]:
                ids = set()
                for tid, _ in outs[a:b]:
                    ids.update(np.asarray(tid).tolist())
                ratio = f"{len(ids) / people:.1f}" if people else "-"
                print(
                    f"| {video} | {a}-{b - 1} | {people or '?'} | {name} |"
                    f" {len(ids)} | {ratio} |"
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--real", action="store_true", help="only the real-video fragmentation table"
    )
    ap.add_argument(
        "--match-iou",
        type=float,
        default=None,
        help="our tracker's match_iou (default: TrackerConfig's)",
    )
    ap.add_argument(
        "--step", type=int, default=1, help="use every N-th frame (25/N per second)"
    )
    ap.add_argument(
        "--ours-only", action="store_true", help="no peers, no real-video table"
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a TrackerConfig field of our tracker (JSON value)",
    )
    args = ap.parse_args()
    global MATCH_IOU
    MATCH_IOU = args.match_iou
    for kv in args.set:
        k, v = kv.split("=", 1)
        OVERRIDES[k] = json.loads(v)
    found, missing = runners()
    if args.ours_only:
        found = {"hallmonitor": found["hallmonitor"]}
        missing = []
    fps = FPS / args.step
    if args.real:
        real_videos(found)
        return
    rows = []
    for seq in motdata.SEQUENCES:
        gt_all = motdata.load_gt(seq)
        gt = {f: gt_all[f] for f in sorted(gt_all)[:: args.step]}
        for level in motdata.LEVELS:
            agg = {n: {"MOTA": [], "IDF1": [], "IDsw": [], "HOTA": []} for n in found}
            best = dict.fromkeys(found, float("inf"))  # seconds per frame
            for seed in args.seeds:
                dets = motdata.noisy_detections(gt_all, level, seed)
                frames = [dets[f] for f in sorted(gt)]
                outs: dict[str, Output] = {}
                # Round-robin repeats: all trackers share the same load swings of
                # this (shared, noisy) machine; keep each one's best run.
                for _ in range(args.repeat):
                    for name, run in found.items():
                        outs[name], e = run(frames, fps)
                        best[name] = min(best[name], e / len(frames))
                for name in found:
                    m = clear_idf1(gt, outs[name])
                    for k in ("MOTA", "IDF1", "IDsw"):
                        agg[name][k].append(m[k])
                    h = hota(gt, outs[name])
                    if h is not None:
                        agg[name]["HOTA"].append(h)
            for name in found:
                a = agg[name]
                rows.append(
                    {
                        "tracker": name,
                        "seq": seq,
                        "level": level,
                        "MOTA": float(np.mean(a["MOTA"])),
                        "IDF1": float(np.mean(a["IDF1"])),
                        "HOTA": float(np.mean(a["HOTA"])) if a["HOTA"] else math.nan,
                        "IDsw": float(np.mean(a["IDsw"])),
                        "fps": 1.0 / best[name],
                    }
                )
    hdr = "| tracker | sequence | level | MOTA | IDF1 | HOTA | IDsw | fps | target |"
    print(
        f"seeds {args.seeds}, every {args.step}. frame ({fps:g}/s)"
        " (metrics are means over seeds; fps best run)"
    )
    if missing:
        print(f"not installed, skipped: {', '.join(missing)}")
    print(hdr)
    print("|" + "---|" * 9)
    for r in rows:
        peers = [
            p
            for p in rows
            if p["seq"] == r["seq"]
            and p["level"] == r["level"]
            and p["tracker"] != "hallmonitor"
        ]
        target = ""
        if r["tracker"] == "hallmonitor" and peers:
            best_mota = max(p["MOTA"] for p in peers)
            best_idf1 = max(p["IDF1"] for p in peers)
            ok_acc = r["MOTA"] >= best_mota - 1e-9 and r["IDF1"] >= best_idf1 - 1e-9
            fastest = max(p["fps"] for p in peers)
            target = (
                f"acc {'met' if ok_acc else 'MISSED'}"
                f" (best peer MOTA {best_mota:.3f} IDF1 {best_idf1:.3f});"
                f" {r['fps'] / fastest:.1f}x fastest peer"
            )
        print(
            f"| {r['tracker']} | {r['seq']} | {r['level']} | {r['MOTA']:.3f} |"
            f" {r['IDF1']:.3f} | {r['HOTA']:.3f} | {r['IDsw']:.1f} |"
            f" {r['fps']:.0f} | {target} |"
        )
    ms = bench_30_objects()
    print(f"\nhallmonitor update(), 30 objects: {ms:.3f} ms/frame (best of 5)")
    if not args.ours_only:
        real_videos(found)


if __name__ == "__main__":
    main()
