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

   Scenes (``--scene``): ``busy`` loops the three busy videos on every camera (traffic
   and a walking person every second: the worst case, nothing for the gate to skip);
   ``campus`` is a typical school day: one camera in four watches continuous activity
   (the busy videos), the others watch a quiet scene where someone passes about one
   second in five. Quiet scenes are derived from the real videos (see
   :func:`quiet_video`): the video's own empty background (per-pixel temporal median)
   with sensor noise and a slow exposure drift, then the real clip, looped. Streams
   are pre-encoded once and stream-copied by the RTSP server (``--live-encode`` to
   encode live), because a real camera encodes on its own chip, not on this box.

Usage::

    python scripts/bench_capacity.py --part accuracy
    python scripts/bench_capacity.py --part capacity --cameras 4,8,16 --duration 20
    python scripts/bench_capacity.py --part capacity --scene campus --cameras 16
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
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
    app: AppConfig,
    cam_id: str,
    mode: str,
    url: str | None = None,
    adaptive: bool = False,
    **src: Any,
) -> CameraConfig:
    cam = app.camera(cam_id)
    # Fixed sampling (no idle_fps): "held" means the worker keeps up with detect_fps;
    # the gate's savings show as fewer detector calls per second. ``adaptive`` keeps
    # the config's idle_fps (the product default: idle scenes sampled at 2/s).
    upd_g: dict[str, Any] = {"mode": mode}
    if not adaptive:
        upd_g["idle_fps"] = None
    gating = cam.gating.model_copy(update=upd_g)
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
        # The last row is the example config as shipped: regions with idle scenes
        # sampled at idle_fps (replay paces by video time as the live loop would).
        for mode, adaptive in [*((m, False) for m in STRATEGIES), ("regions", True)]:
            cam = _camera(
                app, cam_id, mode, str(path), adaptive, loop=False, realtime=False
            )
            # Replay stamps frames with today's wall clock: drop the time-of-day
            # schedules (after hours: 2 s instead of 3 s) so that results do not
            # depend on when the benchmark runs.
            rules = cam.rules.model_copy(
                update={
                    "loitering": tuple(
                        r.model_copy(update={"schedules": ()})
                        for r in cam.rules.loitering
                    )
                }
            )
            cam = cam.model_copy(update={"rules": rules})
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
                    "strategy": mode
                    + (f", idle {cam.gating.idle_fps:g}/s" if adaptive else ""),
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
    go: Any,
    redis_url: str | None = None,
    stream: str = "",
) -> None:
    """One simulated camera: run the real loop for ``duration_s``; report metrics.

    Reports ``"ready"`` once its parts are built, then waits for ``go`` so that every
    camera measures the same window (16 spawning processes take a while to import).
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from monitor.worker import build_parts, run_camera

    # A fresh data dir per run: a simulated camera starts clean, like a first start
    # (no rule state, e.g. open events of the previous run ended at start-up).
    app = load_config(app_path).model_copy(
        update={"data_dir": tempfile.mkdtemp(prefix="hm-bench-data-")}
    )
    cam = CameraConfig.model_validate_json(cam_json)
    if detector is None:
        from monitor.detector import load_detector

        # Per-worker sessions: one intra-op thread each, or N workers oversubscribe.
        detector = load_detector(app.detector.model_copy(update={"threads": 1}))
    sink: Any = _ListSink()
    if redis_url:
        from monitor.publisher import EventPublisher

        # The real publisher (bounded queue, sender thread, spool): the parent reads
        # the stream afterwards and measures capture -> event-in-Redis per event.
        sink = EventPublisher(
            redis_url,
            stream=stream,
            heartbeat_stream=stream + ":hb",
            maxlen=1_000_000,
            spool_dir=Path(tempfile.mkdtemp(prefix="hm-bench-spool-")),
            spool_max_events=10_000,
        )
    parts = build_parts(app, cam, sink, evidence=False, detector=detector)
    out_q.put("ready")
    go.wait()
    lat: list[float] = []
    t_seen: list[float] = []
    # Whether the gate skipped the detector on each processed frame: with adaptive
    # sampling the interval after a non-skipped frame is the active sampling period.
    skipped: list[bool] = []
    reasons: dict[str, int] = {}
    gate = parts.gate
    if gate is not None:
        gate_update = gate.update

        def recording_update(frame: Any, tracked: Any) -> Any:
            d = gate_update(frame, tracked)
            skipped.append(d.plan.value == "skip")
            why = d.reason
            if why == "rule-areas":  # split: motion seen, or tracks only
                moving = d.motion is not None and len(d.motion.boxes) > 0
                why += "/motion" if moving else "/tracks"
                if d.motion is not None and d.motion.changed_frac > 0.2:
                    why += "/changed>20%"
            reasons[why] = reasons.get(why, 0) + 1
            return d

        gate.update = recording_update  # type: ignore[method-assign]

    def observe(frame: Any, events: Any) -> None:
        now = time.time()
        t_seen.append(now)
        lat.append(now - frame.ts)
        if len(skipped) < len(t_seen):
            skipped.append(False)  # no gate: every frame is detected

    stop = threading.Event()
    threading.Timer(duration_s, stop.set).start()
    stats = run_camera(cam, parts, stop, heartbeat_s=1e9, observer=observe)
    src = parts.source.stats()
    parts.close()
    if redis_url:
        sink.close()
    # Rate between the first and last processed frame (connect/close time excluded).
    span = max(t_seen[-1] - t_seen[0], 1e-6) if len(t_seen) > 1 else float("inf")
    out_q.put(
        {
            "camera": cam.id,
            "frames": stats.frames,
            "fps": (stats.frames - 1) / span if stats.frames > 1 else 0.0,
            "detector_calls": stats.detector_calls,
            "dropped": src.frames_dropped,
            "fps_in": src.fps_in,
            "frames_in": src.frames_in,
            "lat": lat,
            "plans": stats.plans,
            "reasons": reasons,
            "active_fps": _active_fps(t_seen, skipped),
        }
    )


def _active_fps(t_seen: list[float], skipped: list[bool]) -> float:
    """Sampling rate after frames the gate sent to the detector (NaN: none)."""
    gaps = [
        b - a for a, b, s in zip(t_seen, t_seen[1:], skipped, strict=False) if not s
    ]
    return len(gaps) / sum(gaps) if gaps and sum(gaps) > 0 else float("nan")


CACHE = ROOT / "var" / "bench_cache"
# (source video, quiet seconds before its real clip, clip seconds): about 1 s in 5 active.
QUIET = {
    "office_quiet": ("indoor_person.mp4", 24.0, 6.2),  # 1280x720, 29.5 fps
    "lot_quiet": ("road_traffic.mp4", 40.0, 10.0),  # 640x360, 25 fps
}
BUSY = ("road_traffic.mp4", "indoor_person.mp4", "bridge_traffic.mp4")


def quiet_video(name: str) -> Path:
    """Build (once) a mostly-empty camera view from a real video; returns its path.

    The scene's background is the per-pixel median of 60 frames spread over the video
    (moving people and cars vanish from it). The quiet part repeats it with Gaussian
    sensor noise (sigma 2 grey levels) and a slow +-4 % exposure drift (what an idle
    camera really sends: the motion gate must ignore both); then the first
    ``clip_s`` seconds of the real video follow (someone walks or drives through).
    Written to ``var/bench_cache`` (git-ignored), never into the shared data.
    """
    import cv2
    import numpy as np

    src_name, quiet_s, clip_s = QUIET[name]
    out = CACHE / f"{name}.mp4"
    if out.exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    cap = cv2.VideoCapture(str(SHARED / "data" / "videos" / src_name))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    step = max(len(frames) // 60, 1)
    plate = np.median(np.stack(frames[::step]), axis=0).astype(np.float32)
    h, w = plate.shape[:2]
    tmp = out.with_suffix(".part.mp4")
    vw = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    rng = np.random.default_rng(0)
    n_quiet = int(quiet_s * fps)
    for i in range(n_quiet):
        gain = 1.0 + 0.04 * np.sin(2 * np.pi * i / (fps * 20.0))
        noisy = plate * gain + rng.normal(0.0, 2.0, plate.shape).astype(np.float32)
        vw.write(np.clip(noisy, 0, 255).astype(np.uint8))
    for f in frames[: int(clip_s * fps)]:
        vw.write(f)
    vw.release()
    tmp.rename(out)
    return out


def plan_cameras(n: int, scene: str) -> list[tuple[Path, str]]:
    """(video, base camera id in the example config) for each of ``n`` cameras."""
    videos = [SHARED / "data" / "videos" / v for v in BUSY]
    # traffic videos get the counting-line camera, the office the zone one
    busy = [(v, "concourse" if "indoor" in v.name else "road") for v in videos]
    if scene == "busy":
        return [busy[i % len(busy)] for i in range(n)]
    n_busy = max(1, (n + 3) // 4)
    quiet = [
        (quiet_video("office_quiet"), "concourse"),
        (quiet_video("lot_quiet"), "road"),
    ]
    return [busy[i % len(busy)] for i in range(n_busy)] + [
        quiet[i % len(quiet)] for i in range(n - n_busy)
    ]


def _rtsp_urls(
    plan: list[tuple[Path, str]], preencode: bool, width: int | None = None
) -> tuple[list[str], Any]:
    """Serve the cameras' videos over the project's loopback RTSP server.

    Pre-encoded (default): one stream per camera, each starting at another offset in
    its file (copying costs ~1-2 % of a core per stream). Live encoding: cameras that
    replay the same video share one encoder (~0.1-0.45 core each on these cores).
    ``width``: serve every stream scaled to this width (a camera's detect sub-stream,
    ``source.detect_url``), e.g. 640 for 640x360.
    """
    try:
        from monitor.rtsp_server import RtspServer
    except ImportError:
        return [], None
    server = RtspServer()
    urls = []
    if preencode:
        import cv2

        durations: dict[Path, float] = {}
        for video in {v for v, _ in plan}:  # once per file, not per camera
            cap = cv2.VideoCapture(str(video))
            n = cap.get(cv2.CAP_PROP_FRAME_COUNT)
            durations[video] = n / (cap.get(cv2.CAP_PROP_FPS) or 25)
            cap.release()
        for i, (video, _) in enumerate(plan):
            dur = durations[video]
            # Spread the cameras over the file (golden-ratio steps): quiet cameras'
            # passers-by arrive at different times, as on a real campus.
            start = ((i * 0.618) % 1.0) * max(dur - 1.0, 0.0)
            urls.append(
                server.add_stream(
                    f"cam{i}", video, preencode=True, start_s=start, width=width
                )
            )
    else:
        mounted: dict[Path, str] = {}
        for video, _ in plan:
            if video not in mounted:
                mounted[video] = server.add_stream(
                    f"v{len(mounted)}", video, width=width
                )
            urls.append(mounted[video])
    try:
        server.start(timeout_s=60)
    except Exception as exc:  # noqa: BLE001 - fall back to file sources
        print(
            f"RTSP server unavailable ({exc}); using real-time file sources",
            file=sys.stderr,
        )
        return [], None
    return urls, server


def capacity(
    app_path: str,
    cameras: list[int],
    duration_s: float,
    fps: float,
    strategies: list[str],
    scene: str = "busy",
    preencode: bool = True,
    width: int | None = None,
    redis_url: str | None = None,
    adaptive: bool = False,
) -> list[dict[str, Any]]:
    """Run N live cameras per strategy; stop growing N once the rate is not held.

    With ``redis_url`` every worker publishes through the real ``RedisPublisher``
    and the row reports p95 capture -> event-in-Redis (Redis entry id time minus the
    event's frame time, same host clock).
    """
    import psutil

    from monitor.detector_service import DetectorService

    app = load_config(app_path)
    # 640x360-720p mp4s (the AVI's odd header makes its looped stream stutter at
    # every loop, which would be charged to the worker).
    rows = []
    ctx = mp.get_context("spawn")
    for strat in strategies:
        mode, shared = (strat.split("+") + [""])[:2]
        for n in cameras:
            plan = plan_cameras(n, scene)
            urls, server = _rtsp_urls(plan, preencode, width)
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
            go = ctx.Event()
            stream = f"hm-bench:{os.getpid()}:{strat}:{n}:{time.time_ns()}"
            procs = []
            for i in range(n):
                video, base = plan[i]
                url = urls[i] if urls else str(video)
                src = {} if urls else {"loop": True, "realtime": True}
                cam = _camera(app, base, mode, url, adaptive, **src).model_copy(
                    update={"id": f"cam{i}", "detect_fps": fps}
                )
                det = service.client(i) if service else None
                p = ctx.Process(
                    target=_live_worker,
                    args=(
                        app_path,
                        cam.model_dump_json(),
                        det,
                        duration_s,
                        q,
                        go,
                        redis_url,
                        stream,
                    ),  # fmt: skip
                )
                p.start()
                procs.append(p)
            ready, t_ready = 0, time.time() + 180
            while ready < n and time.time() < t_ready:
                try:
                    if q.get(timeout=1.0) == "ready":
                        ready += 1
                except Exception:  # noqa: BLE001 - queue.Empty
                    pass
            go.set()
            ps = [psutil.Process(p.pid) for p in procs]
            if service is not None:
                ps.append(psutil.Process(service._proc.pid))  # noqa: SLF001
            # The simulated cameras: the ffmpeg stream copies plus this process,
            # whose asyncio thread relays every RTP packet to the workers. A real
            # deployment does not spend this; it shares the two cores all the same.
            srv_ps = (
                [
                    psutil.Process(st.proc.pid)
                    for st in server._streams.values()  # noqa: SLF001
                    if st.proc
                ]
                + [psutil.Process()]
                if server is not None
                else []
            )
            cpu: list[float] = []
            srv_cpu: list[float] = []
            box_cpu: list[float] = []
            rss: list[float] = []
            for pr in ps + srv_ps:
                pr.cpu_percent(None)
            psutil.cpu_percent(None)
            t_end = time.time() + duration_s + 15
            results = []
            while len(results) < n and time.time() < t_end:
                time.sleep(1.0)
                try:
                    cpu.append(sum(pr.cpu_percent(None) for pr in ps))
                    srv_cpu.append(sum(pr.cpu_percent(None) for pr in srv_ps))
                    box_cpu.append(psutil.cpu_percent(None) * (os.cpu_count() or 1))
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
            redis_lat = _redis_latencies(redis_url, stream) if redis_url else []
            fpss = sorted(r["fps"] for r in results) or [0.0]
            calls = sum(r["detector_calls"] for r in results)
            if adaptive:
                # Adaptive sampling: a camera holds when it samples at >= 90 % of
                # detect_fps while the detector is in use (idle stretches run at
                # idle_fps by design) and p95 capture -> processed stays < 1 s.
                act = [
                    r["active_fps"]
                    for r in results
                    if r["active_fps"] == r["active_fps"]
                ]
                fpss = sorted(act) or [0.0]
                p95 = lat[int(0.95 * (len(lat) - 1))] if lat else float("inf")
                held = len(results) == n and min(fpss) >= 0.9 * fps and p95 < 1.0
            else:
                held = len(results) == n and min(fpss) >= 0.9 * fps
            rows.append(
                {
                    "strategy": strat,
                    "scene": scene
                    + (f" @{width}w" if width else "")
                    + (" adaptive" if adaptive else ""),
                    "transport": transport + ("" if preencode or not urls else "+enc"),
                    "cameras": n,
                    "fps_min": min(fpss),
                    "fps_median": statistics.median(fpss),
                    "held": held,
                    "detector_calls_s": calls / duration_s,
                    "dropped": sum(r["dropped"] for r in results),
                    "cpu_pct": statistics.median(cpu[1:])
                    if len(cpu) > 1
                    else float("nan"),
                    "server_cpu_pct": statistics.median(srv_cpu[1:])
                    if len(srv_cpu) > 1
                    else float("nan"),
                    "box_cpu_pct": statistics.median(box_cpu[1:])
                    if len(box_cpu) > 1
                    else float("nan"),
                    # Everything else on the machine (another job, a benchmark
                    # next door): a run with much of it is not a clean measurement.
                    "other_cpu_pct": statistics.median(
                        b - c - v
                        for b, c, v in zip(
                            box_cpu[1:], cpu[1:], srv_cpu[1:], strict=False
                        )
                    )
                    if min(len(box_cpu), len(cpu), len(srv_cpu)) > 1
                    else float("nan"),
                    "rss_mb": max(rss) if rss else float("nan"),
                    "p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))]
                    if lat
                    else float("nan"),
                    "per_camera": {
                        r["camera"]: (
                            round(r["fps"], 2),
                            r["detector_calls"],
                            r["reasons"],
                            r["frames_in"],
                        )
                        for r in results
                    },
                    "events_in_redis": len(redis_lat),
                    "p95_redis_ms": 1000 * redis_lat[int(0.95 * (len(redis_lat) - 1))]
                    if redis_lat
                    else float("nan"),
                }
            )
            print_capacity(rows[-1:], header=len(rows) == 1, fps=fps)
            if not held:
                break
    return rows


def _redis_latencies(redis_url: str, stream: str) -> list[float]:
    """Sorted seconds from each event's frame capture to its XADD; deletes the stream."""
    import redis

    from monitor.events import MessageError, decode_event

    r = redis.Redis.from_url(redis_url)
    out = []
    for entry_id, fields in r.xrange(stream):
        try:
            ev = decode_event(fields)
        except MessageError:
            continue
        added = int(entry_id.split(b"-")[0]) / 1000.0
        out.append(added - ev.ts.timestamp())
    r.delete(stream, stream + ":hb")
    return sorted(out)


def _bench_redis() -> tuple[str, Any]:
    """``REDIS_URL``, else a local Redis on 6379, else the embedded one (started)."""
    import redis

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        return url, None
    except redis.RedisError:
        from monitor.embedded_redis import EmbeddedRedis

        emb = EmbeddedRedis(
            tempfile.mkdtemp(prefix="hm-bench-redis-"), appendonly=False
        )
        return emb.start(), emb


def cpu_model() -> str:
    """The CPU's model name and its vector extensions that ONNX Runtime uses."""
    name, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, val = line.partition(":")
            if key.strip() == "model name":
                name = val.strip()
            elif key.strip() == "flags":
                flags = set(val.split())
                break
    except OSError:
        pass
    ext = [f for f in ("avx2", "avx512f", "avx512_vnni", "amx_int8") if f in flags]
    return f"{name} ({', '.join(ext) or 'no AVX2'})"


def print_capacity(
    rows: list[dict[str, Any]], header: bool = True, fps: float = 5.0
) -> None:
    if header:
        print(f"\n## Capacity on this box (target {fps:g} detections/s per camera)\n")
        print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores.\n")
        print("| scene | strategy | transport | cameras | fps min / median | held | detector calls/s | "
              "dropped | CPU % | camera simulation CPU % | box CPU % | other load CPU % | RSS MB | "
              "p95 capture→processed ms | events | p95 capture→event in Redis ms |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['scene']} | {r['strategy']} | {r['transport']} | {r['cameras']} | {r['fps_min']:.2f} / "
            f"{r['fps_median']:.2f} | {'yes' if r['held'] else 'NO'} | "
            f"{r['detector_calls_s']:.1f} | {r['dropped']} | {r['cpu_pct']:.0f} | "
            f"{r['server_cpu_pct']:.0f} | {r['box_cpu_pct']:.0f} | "
            f"{r.get('other_cpu_pct', float('nan')):.0f} | "
            f"{r['rss_mb']:.0f} | {r['p95_ms']:.0f} | {r.get('events_in_redis', 0)} | "
            f"{r.get('p95_redis_ms', float('nan')):.0f} |",
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
    ap.add_argument("--scene", choices=["busy", "campus"], default="busy")
    ap.add_argument(
        "--live-encode",
        action="store_true",
        help="encode the RTSP streams live on this box (default: pre-encode once and "
        "stream-copy, as a real camera encodes on its own chip)",
    )
    ap.add_argument(
        "--width",
        type=int,
        help="serve every camera scaled to this width (its detect sub-stream), "
        "e.g. 640 for 640x360; default: native 640x360 / 1280x720",
    )
    ap.add_argument(
        "--adaptive",
        action="store_true",
        help="product sampling: idle scenes at the config's idle_fps (2/s); 'held' "
        "then means >= 90 %% of --fps while the detector is in use, p95 < 1 s",
    )
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
        redis_url, embedded = _bench_redis()
        out["capacity"] = capacity(
            args.config,
            [int(x) for x in args.cameras.split(",")],
            args.duration,
            args.fps,
            args.strategies.split(","),
            scene=args.scene,
            preencode=not args.live_encode,
            width=args.width,
            redis_url=redis_url,
            adaptive=args.adaptive,
        )
        if embedded is not None:
            embedded.stop()
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
