"""Line counts vs hand counts at several detection rates, from cached detections.

The detector runs ONCE over every frame of each video (full frame, thresholds and
classes from the config's ``detector`` section, frames and timestamps from
``monitor.sources.ReplaySource`` exactly as ``hallmonitor replay`` reads them) and
its output is cached in ``var/bench_cache/<video>-<model sha256[:16]>-<config
hash>.npz``. The tracker (``config.tracker``) and the camera's rule pipelines
(``pipelines.factory.build_pipelines``) are then replayed on the cached frames
subsampled to each rate with the same timestamp grid as ``ReplaySource``
(``sample_fps``), so a row here is what ``hallmonitor replay --detect-fps R`` counts
with ``gating: {mode: full}`` (``--check-replay`` verifies that for one rate).

The camera is the ``road`` camera of ``config/campus.example.yaml`` (its vehicle-flow
rule: classes, hysteresis, windows) with the line replaced by the hand-count segment
of each video (docs/rules.md, "Hand counts") and gating switched to full-frame.

Columns: in/out counted, hand counts, abs error (``|in - hand in| + |out - hand
out|``); for road_traffic.mp4 each counted crossing is also matched to the nearest
hand-counted crossing frame (within ``--tol-s``): ``extra`` are counts with no hand
crossing nearby (false counts or double counts), ``missed`` hand crossings nobody
counted; ``ids`` is the number of public track ids the tracker gave out (vehicles and
people; fewer for the same counts means less id churn).

Usage::

    python scripts/bench_counts.py                       # both models, both videos
    python scripts/bench_counts.py --models yolox_nano --rates 5 --verbose
    python scripts/bench_counts.py --check-replay 5      # cached path == replay
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.loader import load_config  # noqa: E402
from config.schema import AppConfig, CameraConfig  # noqa: E402
from monitor.types import Detections, Frame  # noqa: E402

SHARED = ROOT.parent / "shared"
CACHE = ROOT / "var" / "bench_cache"

#: Hand-count segments (relative coordinates, in = down) and counts (in, out).
LINES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "road_traffic.mp4": ((0.2, 0.55), (0.9, 0.55)),
    "bridge_traffic.mp4": ((0.2, 0.6), (0.8, 0.6)),
}
HAND: dict[str, tuple[int, int]] = {
    "road_traffic.mp4": (0, 36),
    "bridge_traffic.mp4": (1, 5),
}
#: Approximate frame of each hand-counted crossing (docs/rules.md), all "out".
HAND_FRAMES: dict[str, list[int]] = {
    "road_traffic.mp4": [
        35, 75, 100, 155, 175, 195, 285, 345, 385, 435, 465, 485, 515, 525, 540,
        565, 645, 665, 695, 745, 755, 775, 815, 855, 915, 945, 965, 1020, 1075,
        1095,  # 30 cars
        375, 685, 1040,  # buses
        5,  # truck
        15, 1075,  # scooters
    ],
}  # fmt: skip


# --------------------------------------------------------------------- cache
def _cfg_key(app: AppConfig) -> str:
    d = app.detector.model_dump(mode="json")
    d.pop("models_dir", None)
    d.pop("threads", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


def cached_detections(
    app: AppConfig, video: Path, quiet: bool = False
) -> tuple[dict[str, np.ndarray], Any]:
    """Every frame's detections of ``video`` (computed once, then read from disk).

    Returns:
        ``(arrays, detector)``; arrays: ``t (F,)`` video seconds, ``index (F,)``,
        ``off (F+1,)`` row offsets into ``xyxy (D, 4)``, ``conf (D,)``,
        ``cls (D,)``, ``wh (2,)``; detector: the loaded detector (class names).
    """
    from monitor.detector import load_detector
    from monitor.sources import ReplaySource

    det = load_detector(app.detector)
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{video.name}-{det.model_sha256[:16]}-{_cfg_key(app)}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}, det
    src = ReplaySource("bench", str(video))
    t, idx, off, boxes, conf, cls = [], [], [0], [], [], []
    wh = (0, 0)
    t0 = time.perf_counter()
    base = None
    while (fr := src.read()) is not None:
        if base is None:
            base = fr.mono
        d = det.detect(fr.image)
        t.append(fr.mono - base)
        idx.append(fr.seq)
        boxes.append(d.xyxy)
        conf.append(d.confidence)
        cls.append(d.class_id)
        off.append(off[-1] + len(d))
        wh = fr.resolution_wh
    src.close()
    arr = {
        "t": np.asarray(t, np.float64),
        "index": np.asarray(idx, np.int64),
        "off": np.asarray(off, np.int64),
        "xyxy": np.concatenate(boxes).astype(np.float32),
        "conf": np.concatenate(conf).astype(np.float32),
        "cls": np.concatenate(cls).astype(np.int64),
        "wh": np.asarray(wh, np.int64),
    }
    np.savez_compressed(path, **arr)
    if not quiet:
        print(
            f"# cached {video.name} / {app.detector.model}: {len(t)} frames in "
            f"{time.perf_counter() - t0:.0f} s -> {path.relative_to(ROOT)}",
            file=sys.stderr,
        )
    return arr, det


def sample(t: np.ndarray, rate: float | None) -> np.ndarray:
    """Indices of the frames ``ReplaySource(sample_fps=rate)`` returns."""
    if not rate:
        return np.arange(t.size)
    period = 1.0 / rate
    out, nxt = [], float(t[0])
    for i, ti in enumerate(t.tolist()):
        if ti + 1e-6 < nxt:
            continue
        out.append(i)
        nxt = max(nxt + period, ti)
    return np.asarray(out, np.int64)


# --------------------------------------------------------------------- replay
def bench_camera(app: AppConfig, camera_id: str, video: str) -> CameraConfig:
    """The product camera with the hand-count line and full-frame gating."""
    cam = app.camera(camera_id)
    a, b = LINES[video]
    flow_line = cam.rules.vehicle_flow[0].line
    lines = [
        ln.model_copy(update={"start": a, "end": b}) if ln.id == flow_line else ln
        for ln in cam.lines
    ]
    gating = cam.gating.model_copy(update={"mode": "full"})
    return cam.model_copy(update={"lines": lines, "gating": gating})


def replay_counts(
    app: AppConfig,
    cam: CameraConfig,
    arr: dict[str, np.ndarray],
    class_names: tuple[str, ...],
    rate: float | None,
    tracker_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Tracker + rule pipelines over the cached detections at ``rate``."""
    from monitor.tracker import Tracker
    from pipelines.factory import build_pipelines
    from pipelines.vehicle_flow import VehicleFlowPipeline

    tcfg = app.tracker
    if tracker_overrides:
        tcfg = tcfg.model_copy(update=tracker_overrides)
    tracker = Tracker(tcfg)
    pipes = build_pipelines(cam, class_names)
    flows = [p for p in pipes if isinstance(p, VehicleFlowPipeline)]
    w, h = (int(v) for v in arr["wh"])
    image = np.zeros((h, w, 3), np.uint8)
    off = arr["off"]
    crossings: list[tuple[int, Any]] = []
    t_all = arr["t"]
    sel = sample(t_all, rate)
    ts0, mono0 = 1_780_000_000.0, 1000.0
    for i in sel.tolist():
        a, b = int(off[i]), int(off[i + 1])
        det = Detections(
            xyxy=arr["xyxy"][a:b],
            confidence=arr["conf"][a:b],
            class_id=arr["cls"][a:b],
        )
        t = float(t_all[i])
        frame = Frame("bench", int(arr["index"][i]), ts0 + t, mono0 + t, image)
        tracked = tracker.update(det, frame.mono)
        removed = np.asarray(tracker.removed_ids, np.int64)
        for p in pipes:
            p.update(frame, tracked, removed)
        for f in flows:
            crossings.extend((frame.seq, c) for c in f.crossings)
    n_in = sum(c.direction == "in" for _, c in crossings)
    n_out = sum(c.direction == "out" for _, c in crossings)
    return {
        "in": n_in,
        "out": n_out,
        "ids": tracker._next_id - 1,  # noqa: SLF001 - benchmark introspection
        "frames": int(sel.size),
        "crossings": crossings,
    }


def match_hand(
    frames: list[int], hand: list[int], tol: float
) -> tuple[int, int, list[int], list[int]]:
    """Optimal one-to-one matching of counted to hand crossing frames (|df| <= tol).

    Returns:
        ``(extra, missed, unmatched counted frames, missed hand frames)``.
    """
    from scipy.optimize import linear_sum_assignment

    if not frames or not hand:
        return len(frames), len(hand), list(frames), list(hand)
    d = np.abs(np.asarray(frames)[:, None] - np.asarray(hand)[None, :]).astype(float)
    cost = np.where(d <= tol, d, 1e6)
    r, c = linear_sum_assignment(cost)
    ok = cost[r, c] < 1e6
    used = set(r[ok].tolist())
    extra = [f for i, f in enumerate(frames) if i not in used]
    found = set(c[ok].tolist())
    missed = [f for j, f in enumerate(hand) if j not in found]
    return len(extra), len(missed), extra, missed


def check_replay(app: AppConfig, config: Path, camera_id: str, rate: float) -> None:
    """Run the product's replay path (``build_parts`` + ``run_camera``) on each video
    with full-frame gating and compare its counts with the cached path."""
    import threading

    from monitor.worker import build_parts, run_camera
    from pipelines.vehicle_flow import VehicleFlowPipeline

    class _Sink:
        def publish(self, event: Any) -> None:
            pass

        def publish_heartbeat(self, hb: Any) -> None:
            pass

    for video in LINES:
        path = SHARED / "data" / "videos" / video
        cam = bench_camera(app, camera_id, video)
        src = cam.source.model_copy(
            update={"url": str(path), "loop": False, "realtime": False}
        )
        cam = cam.model_copy(update={"source": src, "detect_fps": rate})
        parts = build_parts(app, cam, _Sink(), replay=True, evidence=False)
        n_in = n_out = 0
        flows = [p for p in parts.pipelines if isinstance(p, VehicleFlowPipeline)]

        def obs(_fr: Frame, _ev: list[Any], flows: list[Any] = flows) -> None:
            nonlocal n_in, n_out
            for f in flows:
                for c in f.crossings:
                    n_in += c.direction == "in"
                    n_out += c.direction == "out"

        try:
            run_camera(cam, parts, threading.Event(), replay=True, observer=obs)
        finally:
            parts.close()
        arr, det = cached_detections(app, path)
        r = replay_counts(app, cam, arr, tuple(det.class_names), rate)
        same = (n_in, n_out) == (r["in"], r["out"])
        print(
            f"{video} {app.detector.model} {rate}/s: replay in {n_in} out {n_out}; "
            f"cached in {r['in']} out {r['out']} -> {'same' if same else 'DIFFERENT'}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "config" / "campus.example.yaml"))
    ap.add_argument("--camera", default="road")
    ap.add_argument("--models", nargs="+", default=["yolox_nano", "yolov8n_int8"])
    ap.add_argument("--videos", nargs="+", default=list(LINES))
    ap.add_argument(
        "--rates",
        type=float,
        nargs="+",
        default=[0.0, 12.5, 5.0, 2.5],
        help="detections per second; 0 = every frame",
    )
    ap.add_argument("--tol-s", type=float, default=1.6, help="hand-frame match window")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a TrackerConfig field (repeatable)",
    )
    ap.add_argument("--check-replay", type=float, metavar="RATE")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    base = load_config(args.config)
    over: dict[str, Any] = {}
    for kv in args.set:
        k, v = kv.split("=", 1)
        over[k] = json.loads(v)
    print(
        "| video | model | det/s | in | out | hand in/out | abs err | extra | missed "
        "| ids |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model in args.models:
        app = base.model_copy(
            update={"detector": base.detector.model_copy(update={"model": model})}
        )
        if args.check_replay:
            check_replay(app, Path(args.config), args.camera, args.check_replay)
            continue
        for video in args.videos:
            path = SHARED / "data" / "videos" / video
            arr, det = cached_detections(app, path)
            cam = bench_camera(app, args.camera, video)
            fps = (arr["t"].size - 1) / max(float(arr["t"][-1]), 1e-9)
            for rate in args.rates:
                r = replay_counts(app, cam, arr, tuple(det.class_names), rate, over)
                h_in, h_out = HAND[video]
                err = abs(r["in"] - h_in) + abs(r["out"] - h_out)
                extra = missed = "-"
                if video in HAND_FRAMES:
                    frames = [f for f, c in r["crossings"]]
                    e, m, ex, mi = match_hand(
                        frames, HAND_FRAMES[video], args.tol_s * fps
                    )
                    extra, missed = str(e), str(m)
                    if args.verbose:
                        print(f"#   extra counts at frames {ex}, missed {sorted(mi)}")
                label = f"{rate:g}" if rate else f"all ({fps:.0f})"
                print(
                    f"| {video} | {model} | {label} | {r['in']} | {r['out']} | "
                    f"{h_in}/{h_out} | {err} | {extra} | {missed} | {r['ids']} |"
                )
                if args.verbose:
                    for f, c in r["crossings"]:
                        print(
                            f"#   frame {f}: {c.class_name} id {c.tracker_id} {c.direction}"
                        )


if __name__ == "__main__":
    main()
