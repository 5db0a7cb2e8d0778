#!/usr/bin/env python3
"""Cost of evidence per event: ring-buffer push, snapshot, clip encoding CPU-seconds.

Real frames from the shared videos. For each (source, buffer width, sampling rate)
the clip window (``pre_s + post_s``) is encoded the way ``EvidenceRecorder`` does it
(H.264 veryfast, CRF 26, yuv420p, +faststart, one x264 thread) and the CPU-seconds of
ffmpeg (its own rusage via ``wait4``) plus the piping thread are reported, with wall
time and file size. Also measures the event publisher: publish() call cost, delivery
rate to Redis, and spooling rate while Redis is down.

Usage::

    python scripts/bench_evidence.py [--pre 3 --post 2] [--repeat 3] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.schema import EvidenceConfig  # noqa: E402
from monitor.events import (  # noqa: E402
    CameraHealthPayload,
    Event,
    EventKind,
    EventState,
)
from monitor.evidence import EvidenceRecorder, encode_clip  # noqa: E402
from monitor.types import Frame  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "videos"


def read_frames(name: str, n: int) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(SHARED / name))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    out = []
    while len(out) < n:
        ok, img = cap.read()
        if not ok:
            break
        out.append(img)
    cap.release()
    return out, fps


def _event(ts: float, cam: str = "bench") -> Event:
    t = dt.datetime.fromtimestamp(ts, dt.UTC)
    return Event.new(
        camera_id=cam,
        kind=EventKind.CAMERA_HEALTH,
        state=EventState.INSTANT,
        ts=t,
        started_at=t,
        payload=CameraHealthPayload(status="tamper"),
    )


def bench_push_snapshot(videos: list[str], widths: list[int], repeat: int) -> None:
    print("\n## Frame path: push() and snapshot() per call (ms, median)\n")
    print(
        "| source | buffer width | push ms | snapshot ms | snapshot+boxes ms | jpg KiB |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name in videos:
        frames, _ = read_frames(name, 60)
        h, w = frames[0].shape[:2]
        for bw in [x for x in widths if x <= w] or [w]:
            with tempfile.TemporaryDirectory() as tmp:
                rec = EvidenceRecorder(
                    "bench", EvidenceConfig(buffer_width=bw), Path(tmp)
                )
                push_ms = []
                for i, img in enumerate(frames):
                    f = Frame("bench", i, 1e9 + i / 10, i / 10, img)
                    t = time.perf_counter()
                    rec.push(f)
                    push_ms.append((time.perf_counter() - t) * 1e3)
                snap, both, size = [], [], 0
                for i in range(max(3, repeat)):
                    f = Frame("bench", i, 1e9, 0.0, frames[i])
                    ev = _event(1e9)
                    t = time.perf_counter()
                    refs = rec.snapshot(ev, f)
                    snap.append((time.perf_counter() - t) * 1e3)
                    size = refs[0].bytes
                    t = time.perf_counter()
                    rec.snapshot(ev, f, None, (w * 0.3, h * 0.3, w * 0.5, h * 0.8))
                    both.append((time.perf_counter() - t) * 1e3)
                rec.close()
            print(
                f"| {name} {w}x{h} | {bw} | {statistics.median(push_ms):.2f} | "
                f"{statistics.median(snap):.1f} | {statistics.median(both):.1f} | "
                f"{size / 1024:.0f} |"
            )


def bench_clips(
    videos: list[str], widths: list[int], rates: list[float], window: float, repeat: int
) -> None:
    print(
        f"\n## Clip encoding per event ({window:g} s window, x264 veryfast, 1 thread)\n"
    )
    print("| source | width | sample fps | frames | CPU-s / event | wall s | KiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in videos:
        frames, src_fps = read_frames(name, int(window * 30) + 2)
        h0, w0 = frames[0].shape[:2]
        for bw in [w for w in widths if w <= w0] or [w0]:
            tw = min(bw, w0) // 2 * 2
            th = round(h0 * tw / w0) // 2 * 2
            small_all = [
                cv2.resize(f, (tw, th), interpolation=cv2.INTER_AREA) for f in frames
            ]
            for rate in rates:
                step = max(1, round(src_fps / rate))
                picked = small_all[::step]
                # Frames beyond the video are repeated (static scene) to fill the window.
                n = int(window * rate)
                picked = [picked[min(i, len(picked) - 1)] for i in range(n)]
                monos = np.arange(n) / rate
                cpu, wall, size = [], [], 0
                for _ in range(repeat):
                    with tempfile.TemporaryDirectory() as tmp:
                        out = Path(tmp) / f"{uuid.uuid4()}.mp4"
                        t = time.perf_counter()
                        _, c = encode_clip(picked, monos, out, end_mono=window)
                        wall.append(time.perf_counter() - t)
                        cpu.append(c)
                        size = out.stat().st_size
                print(
                    f"| {name} | {tw}x{th} | {rate:g} | {n} | "
                    f"{statistics.median(cpu):.2f} | {statistics.median(wall):.2f} | "
                    f"{size / 1024:.0f} |"
                )


def bench_publisher(redis_url: str, n: int) -> None:
    from monitor.publisher import EventPublisher

    print(f"\n## Publisher ({n} events)\n")
    print(
        "| case | publish() µs/call (median) | seconds until all sent/spooled | events/s |"
    )
    print("|---|---:|---:|---:|")
    events = [_event(1e9 + i) for i in range(n)]
    cases = [
        ("redis up", redis_url),
        ("redis down (spool)", "unix:///nonexistent.sock"),
    ]
    for label, url in cases:
        with tempfile.TemporaryDirectory() as tmp:
            pub = EventPublisher(
                url,
                stream=f"bench:{uuid.uuid4().hex[:8]}",
                heartbeat_stream="bench:hb",
                maxlen=n * 2,
                spool_dir=Path(tmp),
                spool_max_events=n * 2,
                connect_timeout_s=0.5,
            )
            per = []
            t0 = time.perf_counter()
            for ev in events:
                t = time.perf_counter()
                pub.publish(ev)
                per.append((time.perf_counter() - t) * 1e6)
            while True:
                st = pub.stats()
                if st.published + st.spooled + st.dropped >= n:
                    break
                time.sleep(0.005)
            total = time.perf_counter() - t0
            pub.close(timeout_s=0.5)
            if label == "redis up":
                import redis

                r = redis.Redis.from_url(url)
                r.delete(pub.stream)
                r.close()
        print(
            f"| {label} | {statistics.median(per):.1f} | {total:.2f} | {n / total:.0f} |"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pre", type=float, default=3.0)
    ap.add_argument("--post", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--events", type=int, default=5000)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # keep the tables clean
    videos = ["street_pedestrians_1080p.mp4", "road_traffic.mp4"]
    if not all((SHARED / v).exists() for v in videos):
        print(f"shared videos missing under {SHARED}", file=sys.stderr)
        return 1
    print(f"# Evidence benchmark ({cv2.getNumberOfCPUs()} CPUs)")
    bench_push_snapshot(videos, [640, 1280], args.repeat)
    bench_clips(
        videos, [640, 1280], [5.0, 10.0, 25.0], args.pre + args.post, args.repeat
    )
    try:
        bench_publisher(args.redis_url, args.events)
    except Exception as exc:  # noqa: BLE001 - Redis optional for the benchmark
        print(f"\n(publisher benchmark skipped: {exc.__class__.__name__}: {exc})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
