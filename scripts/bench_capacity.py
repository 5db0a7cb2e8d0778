#!/usr/bin/env python3
"""How many cameras hold their detection rate on this box, per detection strategy.

Two parts, both printed as tables:

1. **Accuracy** (replay, deterministic): on ``road_traffic.mp4`` and
   ``concourse_people.avi``, the line counts and loitering events of each strategy
   (``full`` every sampled frame / ``motion``-gated / ``regions``) against the
   full-frame baseline, plus detector calls per processed frame.
2. **Capacity** (live): N simulated cameras (the shared videos looped at native fps,
   through the real RTSP server when it can start, else as real-time file sources),
   each a worker process sampling at ``--fps``. Per strategy and N: sampled fps per
   camera (min/median), detector calls/s, CPU % and RSS of all processes, p95 latency
   from frame capture to the end of its processing (events are published right after,
   so it bounds capture → event-in-Redis). ``shared`` runs one batched detector
   process for all cameras (``monitor.detector_service``) instead of one per worker.

Usage::

    python scripts/bench_capacity.py --part accuracy
    python scripts/bench_capacity.py --part capacity --cameras 4,8,16 --duration 20
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.loader import load_config  # noqa: E402
from config.schema import AppConfig, CameraConfig  # noqa: E402

SHARED = ROOT.parent / "shared"
CONFIG = ROOT / "config" / "campus.example.yaml"
STRATEGIES = ("full", "motion", "regions")


def _camera(
    app: AppConfig, cam_id: str, mode: str, url: str | None = None, **src: Any
) -> CameraConfig:
    cam = app.camera(cam_id)
    # Fixed sampling (no idle_fps): "held" means the worker keeps up with detect_fps;
    # the gate's savings show as fewer detector calls per second.
    gating = cam.gating.model_copy(update={"mode": mode, "idle_fps": None})
    upd: dict[str, Any] = {"gating": gating}
    if url is not None:
        upd["source"] = cam.source.model_copy(update={"url": url, **src})
    return cam.model_copy(update=upd)


class _ListSink:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def publish(self, event: Any) -> None:
        self.events.append(event)

    def publish_heartbeat(self, hb: Any) -> None:
        pass


# ----------------------------------------------------------------------- accuracy
def accuracy(app: AppConfig) -> list[dict[str, Any]]:
    """Replay each video with each strategy; compare with the full-frame baseline."""
    from monitor.detector import load_detector
    from monitor.worker import build_parts, run_camera

    det = load_detector(app.detector)
    rows = []
    for cam_id, video in (
        ("road", "road_traffic.mp4"),
        ("concourse", "concourse_people.avi"),
    ):
        path = SHARED / "data" / "videos" / video
        for mode in STRATEGIES:
            cam = _camera(app, cam_id, mode, str(path), loop=False, realtime=False)
            sink = _ListSink()
            parts = build_parts(
                app, cam, sink, replay=True, evidence=False, detector=det
            )
            t0 = time.perf_counter()
            stats = run_camera(
                cam, parts, threading.Event(), replay=True, heartbeat_s=1e9
            )
            wall = time.perf_counter() - t0
            parts.close()
            flows = [e for e in sink.events if e.kind == "vehicle_flow"]
            counts_in: dict[str, int] = {}
            counts_out: dict[str, int] = {}
            latest: dict[Any, Any] = {}
            for e in flows:
                latest[e.event_id] = e
            for e in latest.values():
                for k, v in e.payload.counts_in.items():
                    counts_in[k] = counts_in.get(k, 0) + v
                for k, v in e.payload.counts_out.items():
                    counts_out[k] = counts_out.get(k, 0) + v
            loiter = {e.event_id for e in sink.events if e.kind == "loitering"}
            crowd = {e.event_id for e in sink.events if e.kind == "crowding"}
            rows.append(
                {
                    "video": video,
                    "strategy": mode,
                    "frames": stats.frames,
                    "detector_calls": stats.detector_calls,
                    "calls_per_frame": stats.detector_calls / max(stats.frames, 1),
                    "plans": dict(stats.plans),
                    "in": sum(counts_in.values()),
                    "out": sum(counts_out.values()),
                    "by_class_in": counts_in,
                    "by_class_out": counts_out,
                    "loitering_events": len(loiter),
                    "crowding_events": len(crowd),
                    "wall_s": wall,
                    "ms_per_frame": 1000 * wall / max(stats.frames, 1),
                }
            )
    return rows


# Hand counts of the example config's lines (docs/rules.md, "Method").
HAND_COUNTS = {"road_traffic.mp4": (0, 36)}


def print_accuracy(rows: list[dict[str, Any]]) -> None:
    print("\n## Accuracy by strategy (replay at 5 detections/s; baseline = full)\n")
    for video, (hin, hout) in HAND_COUNTS.items():
        print(f"Hand count, {video}: {hin} in, {hout} out.\n")
    print("| video | strategy | frames | detector calls/frame | in | out | Δ count vs full | "
          "loitering ev | crowding ev | ms/frame |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    base = {r["video"]: r for r in rows if r["strategy"] == "full"}
    for r in rows:
        b = base[r["video"]]
        tot, btot = r["in"] + r["out"], b["in"] + b["out"]
        delta = (
            f"{tot - btot:+d} ({(tot - btot) / btot:+.0%})"
            if btot
            else f"{tot - btot:+d}"
        )
        print(
            f"| {r['video']} | {r['strategy']} | {r['frames']} | {r['calls_per_frame']:.2f} | "
            f"{r['in']} | {r['out']} | {delta} | {r['loitering_events']} | "
            f"{r['crowding_events']} | {r['ms_per_frame']:.1f} |"
        )


# ----------------------------------------------------------------------- capacity
def _live_worker(
    app_path: str,
    cam_json: str,
    detector: Any,
    duration_s: float,
    out_q: Any,
) -> None:
    """One simulated camera: run the real loop for ``duration_s``; report metrics."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from monitor.worker import build_parts, run_camera

    app = load_config(app_path)
    cam = CameraConfig.model_validate_json(cam_json)
    if detector is None:
        from monitor.detector import load_detector

        # Per-worker sessions: one intra-op thread each, or N workers oversubscribe.
        detector = load_detector(app.detector.model_copy(update={"threads": 1}))
    sink = _ListSink()
    parts = build_parts(app, cam, sink, evidence=False, detector=detector)
    lat: list[float] = []
    t_seen: list[float] = []

    def observe(frame: Any, events: Any) -> None:
        now = time.time()
        t_seen.append(now)
        lat.append(now - frame.ts)

    stop = threading.Event()
    threading.Timer(duration_s, stop.set).start()
    stats = run_camera(cam, parts, stop, heartbeat_s=1e9, observer=observe)
    src = parts.source.stats()
    parts.close()
    # Rate between the first and last processed frame (connect/close time excluded).
    span = max(t_seen[-1] - t_seen[0], 1e-6) if len(t_seen) > 1 else float("inf")
    out_q.put(
        {
            "camera": cam.id,
            "frames": stats.frames,
            "fps": (stats.frames - 1) / span if stats.frames > 1 else 0.0,
            "detector_calls": stats.detector_calls,
            "dropped": src.frames_dropped,
            "lat": lat,
            "plans": stats.plans,
        }
    )


def _rtsp_urls(n: int, videos: list[Path]) -> tuple[list[str], Any]:
    """Serve each video once over the project's loopback RTSP server; cameras that
    replay the same video share its stream (one encoder per video, not per camera,
    so the server's H.264 encoding does not eat the cores being measured)."""
    try:
        from monitor.rtsp_server import RtspServer
    except ImportError:
        return [], None
    server = RtspServer()
    k = min(n, len(videos))
    paths = [server.add_stream(f"v{i}", videos[i], loop=True) for i in range(k)]
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001 - fall back to file sources
        print(
            f"RTSP server unavailable ({exc}); using real-time file sources",
            file=sys.stderr,
        )
        return [], None
    return [paths[i % k] for i in range(n)], server


def capacity(
    app_path: str,
    cameras: list[int],
    duration_s: float,
    fps: float,
    strategies: list[str],
) -> list[dict[str, Any]]:
    """Run N live cameras per strategy; stop growing N once the rate is not held."""
    import psutil

    from monitor.detector_service import DetectorService

    app = load_config(app_path)
    videos = [
        SHARED / "data" / "videos" / v
        # 640x360-720p mp4s (the AVI's odd header makes its looped stream stutter
        # at every loop, which would be charged to the worker).
        for v in ("road_traffic.mp4", "indoor_person.mp4", "bridge_traffic.mp4")
    ]
    rows = []
    ctx = mp.get_context("spawn")
    for strat in strategies:
        mode, shared = (strat.split("+") + [""])[:2]
        for n in cameras:
            urls, server = _rtsp_urls(n, videos)
            transport = "rtsp" if urls else "file"
            service = None
            if shared:
                service = DetectorService(
                    app.detector.model_copy(update={"threads": os.cpu_count() or 2}),
                    n,
                    max_batch=4,
                )
                service.start()
            q = ctx.Queue()
            procs = []
            for i in range(n):
                # traffic videos get the counting-line camera, the office the zone one
                base = "concourse" if i % len(videos) == 1 else "road"
                url = urls[i] if urls else str(videos[i % len(videos)])
                src = {} if urls else {"loop": True, "realtime": True}
                cam = _camera(app, base, mode, url, **src).model_copy(
                    update={"id": f"cam{i}", "detect_fps": fps}
                )
                det = service.client(i) if service else None
                p = ctx.Process(
                    target=_live_worker,
                    args=(app_path, cam.model_dump_json(), det, duration_s, q),
                )
                p.start()
                procs.append(p)
            ps = [psutil.Process(p.pid) for p in procs]
            if service is not None:
                ps.append(psutil.Process(service._proc.pid))  # noqa: SLF001
            cpu: list[float] = []
            rss: list[float] = []
            for pr in ps:
                pr.cpu_percent(None)
            t_end = time.time() + duration_s + 15
            results = []
            while len(results) < n and time.time() < t_end:
                time.sleep(1.0)
                try:
                    cpu.append(sum(pr.cpu_percent(None) for pr in ps))
                    rss.append(sum(pr.memory_info().rss for pr in ps) / 2**20)
                except psutil.Error:
                    pass
                while not q.empty():
                    results.append(q.get())
            for p in procs:
                p.join(10)
                if p.is_alive():
                    p.kill()
            if service is not None:
                service.stop()
            if server is not None:
                server.close()
            lat = sorted(x for r in results for x in r["lat"][5:])  # skip warm-up
            fpss = sorted(r["fps"] for r in results) or [0.0]
            calls = sum(r["detector_calls"] for r in results)
            held = len(results) == n and min(fpss) >= 0.9 * fps
            rows.append(
                {
                    "strategy": strat,
                    "transport": transport,
                    "cameras": n,
                    "fps_min": min(fpss),
                    "fps_median": statistics.median(fpss),
                    "held": held,
                    "detector_calls_s": calls / duration_s,
                    "dropped": sum(r["dropped"] for r in results),
                    "cpu_pct": statistics.median(cpu[1:])
                    if len(cpu) > 1
                    else float("nan"),
                    "rss_mb": max(rss) if rss else float("nan"),
                    "p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))]
                    if lat
                    else float("nan"),
                    "per_camera": {r["camera"]: round(r["fps"], 2) for r in results},
                }
            )
            print_capacity(rows[-1:], header=len(rows) == 1, fps=fps)
            if not held:
                break
    return rows


def print_capacity(
    rows: list[dict[str, Any]], header: bool = True, fps: float = 5.0
) -> None:
    if header:
        print(f"\n## Capacity on this box (target {fps:g} detections/s per camera)\n")
        print("| strategy | transport | cameras | fps min / median | held | detector calls/s | "
              "dropped | CPU % | RSS MB | p95 capture→processed ms |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['strategy']} | {r['transport']} | {r['cameras']} | {r['fps_min']:.2f} / "
            f"{r['fps_median']:.2f} | {'yes' if r['held'] else 'NO'} | "
            f"{r['detector_calls_s']:.1f} | {r['dropped']} | {r['cpu_pct']:.0f} | "
            f"{r['rss_mb']:.0f} | {r['p95_ms']:.0f} |",
            flush=True,
        )


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--part", choices=["accuracy", "capacity", "peer", "all"], default="all"
    )
    ap.add_argument(
        "--peer-python",
        help="python of a venv with ultralytics + supervision: --part peer (or all) "
        "then also runs the Ultralytics track() + sv.LineZone loop against ours on "
        "road_traffic.mp4 with yolov8n_int8 (scripts/bench_peer.py)",
    )
    ap.add_argument("--config", default=str(CONFIG))
    ap.add_argument("--cameras", default="1,2,4,8,16")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--strategies", default="full,motion,regions,regions+shared")
    ap.add_argument("--json", help="also write raw results here")
    args = ap.parse_args()
    if not (SHARED / "data").exists():
        print(f"shared data not found at {SHARED}", file=sys.stderr)
        return 2
    out: dict[str, Any] = {}
    if args.part in ("accuracy", "all"):
        out["accuracy"] = accuracy(load_config(args.config))
        print_accuracy(out["accuracy"])
    if args.part in ("capacity", "all"):
        out["capacity"] = capacity(
            args.config,
            [int(x) for x in args.cameras.split(",")],
            args.duration,
            args.fps,
            args.strategies.split(","),
        )
    if args.part in ("peer", "all"):
        if not args.peer_python:
            print("peer loop skipped: pass --peer-python (see docs/peer_comparison.md)")
        else:
            import subprocess

            # Same comparison as scripts/bench_peer.py, printed side by side here.
            subprocess.run(
                [sys.executable, str(ROOT / "scripts" / "bench_peer.py"),
                 "--peer-python", args.peer_python],
                check=False, env={**os.environ, "YOLO_OFFLINE": "1"},
            )  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
