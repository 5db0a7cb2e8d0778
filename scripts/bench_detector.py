"""Benchmark the ONNX detector on frames of the shared videos; prints Markdown tables.

Usage::

    .venv/bin/python scripts/bench_detector.py [--frames 120] [--models yolox_nano ...]

Table 1 (per model, batch 1, ``--threads`` intra-op threads): preprocessing, inference
and postprocessing milliseconds, median and p95 over ``--frames`` frames taken evenly
from three shared videos (640x360, 1280x720, 1920x1080).

Table 2 (per model): frames/s and CPU ms per frame for batch 1, 2, 4 with 1 and 2
threads (one detector: batches run frame-parallel on a one-thread session),
and two sessions of 1 thread each running concurrently (what two camera workers with
their own detector would get), to decide whether cameras should share a session.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.detector import DetectorConfig  # noqa: E402
from monitor.detector import OnnxDetector, _as_bgr, read_manifest  # noqa: E402

SHARED = ROOT.parent / "shared"
VIDEOS = ("road_traffic.mp4", "bridge_traffic.mp4", "street_pedestrians_1080p.mp4")


def load_frames(n: int) -> list[np.ndarray]:
    """About ``n`` frames spread evenly over the benchmark videos."""
    per = -(-n // len(VIDEOS))
    frames: list[np.ndarray] = []
    for name in VIDEOS:
        cap = cv2.VideoCapture(str(SHARED / "data" / "videos" / name))
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or per
        step = max(1, total // per)
        i = got = 0
        while got < per:
            ok, img = cap.read()
            if not ok:
                break
            if i % step == 0:
                frames.append(img)
                got += 1
            i += 1
        cap.release()
    return frames[:n]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def stage_table(det: OnnxDetector, frames: list[np.ndarray]) -> list[str]:
    """Per-stage wall and CPU ms (CPU: thread time for the single-threaded pre/post
    stages, process time for inference), robust to other load on the machine."""
    wall: dict[str, list[float]] = {k: [] for k in ("pre", "inf", "post", "tot")}
    cpu: dict[str, list[float]] = {k: [] for k in ("pre", "inf", "post", "tot")}
    for img in frames:
        w0, c0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
        blob, infos = det._preprocess([_as_bgr(img)])
        w1, c1, p1 = time.perf_counter(), time.thread_time(), time.process_time()
        raw = det._infer(blob)
        w2, c2, p2 = time.perf_counter(), time.thread_time(), time.process_time()
        det._postprocess(raw[0], infos[0])
        w3, c3, p3 = time.perf_counter(), time.thread_time(), time.process_time()
        for k, a, b in (("pre", w0, w1), ("inf", w1, w2), ("post", w2, w3)):
            wall[k].append((b - a) * 1e3)
        wall["tot"].append((w3 - w0) * 1e3)
        cpu["pre"].append((c1 - c0) * 1e3)
        cpu["inf"].append((p2 - p1) * 1e3)
        cpu["post"].append((c3 - c2) * 1e3)
        cpu["tot"].append((p3 - p0) * 1e3)
    med = {k: statistics.median(v) for k, v in wall.items()}
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    rows = []
    for name, k in (
        ("preprocess", "pre"),
        ("inference", "inf"),
        ("postprocess", "post"),
        ("end to end", "tot"),
    ):
        rows.append(
            f"| {name} | {med[k]:.2f} | {pct(wall[k], 95):.2f} | {cmed[k]:.2f} |"
        )
    ratio = (med["pre"] + med["post"]) / med["inf"]
    cratio = (cmed["pre"] + cmed["post"]) / cmed["inf"]
    rows.append(
        f"| (pre+post)/inference | {ratio * 100:.1f} % | | {cratio * 100:.1f} % |"
    )
    return rows


def fps(det: OnnxDetector, frames: list[np.ndarray], batch: int) -> str:
    """``frames/s (CPU ms per frame)`` over ``frames`` in batches of ``batch``."""
    t, c = time.perf_counter(), time.process_time()
    for i in range(0, len(frames), batch):
        det.detect_batch(frames[i : i + batch])
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return f"{len(frames) / wall:.1f} ({cpu / len(frames) * 1e3:.1f})"


def fps_two_sessions(dets: list[OnnxDetector], frames: list[np.ndarray]) -> str:
    halves = [frames[0::2], frames[1::2]]
    with ThreadPoolExecutor(2) as ex:
        t, c = time.perf_counter(), time.process_time()
        list(ex.map(lambda k: [dets[k].detect(f) for f in halves[k]], range(2)))
        wall, cpu = time.perf_counter() - t, time.process_time() - c
    return f"{len(frames) / wall:.1f} ({cpu / len(frames) * 1e3:.1f})"


def _burn(stop: object) -> None:
    """Keep one core busy (stands in for a video decoder sharing the CPU)."""
    x = 0
    while not stop.is_set():  # type: ignore[attr-defined]
        for i in range(10_000):
            x += i


def session_table(path: Path, rounds: int = 5, runs: int = 10) -> list[str]:
    """Raw inference ms for session options, as found and with one more busy core."""
    sess = {}
    for label, threads, spin in (
        ("2 threads, spinning", 2, "1"),
        ("2 threads, no spinning (used)", 2, "0"),
        ("1 thread", 1, "0"),
    ):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", spin)
        sess[label] = ort.InferenceSession(
            str(path), so, providers=["CPUExecutionProvider"]
        )
    inp = next(iter(sess.values())).get_inputs()[0]
    x = np.full((1, *inp.shape[1:]), 0.5, np.float32)

    def measure() -> dict[str, tuple[float, float]]:
        wall: dict[str, list[float]] = {k: [] for k in sess}
        cpu: dict[str, list[float]] = {k: [] for k in sess}
        for _ in range(rounds):  # interleaved, so load changes hit all alike
            for k, s in sess.items():
                s.run(None, {inp.name: x})
                t, c = time.perf_counter(), time.process_time()
                for _ in range(runs):
                    s.run(None, {inp.name: x})
                wall[k].append((time.perf_counter() - t) / runs * 1e3)
                cpu[k].append((time.process_time() - c) / runs * 1e3)
        return {
            k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in sess
        }

    idle = measure()
    stop = mp.Event()
    burner = mp.Process(target=_burn, args=(stop,), daemon=True)
    burner.start()
    try:
        busy = measure()
    finally:
        stop.set()
        burner.join()
    rows = []
    for k in sess:
        rows.append(
            f"| {k} | {idle[k][0]:.1f} | {idle[k][1]:.1f} | {busy[k][0]:.1f} | "
            f"{busy[k][1]:.1f} |"
        )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=120, help="frames for table 1")
    ap.add_argument(
        "--fps-frames", type=int, default=48, help="frames per throughput cell"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", nargs="*", default=["yolox_nano", "yolov8n_int8"])
    ap.add_argument("--models-dir", default=str(SHARED / "models"))
    args = ap.parse_args()

    manifest = read_manifest(ROOT / "models" / "manifest.yaml")
    frames = load_frames(args.frames)
    sizes = sorted({f"{f.shape[1]}x{f.shape[0]}" for f in frames})
    print(f"{len(frames)} frames ({', '.join(sizes)}) from {', '.join(VIDEOS)}")
    print(
        f"onnxruntime {ort.__version__}, opencv {cv2.__version__}, numpy "
        f"{np.__version__}, {os.cpu_count()} CPUs, load average at start "
        f"{os.getloadavg()[0]:.2f}\n"
    )
    for name in args.models:
        entry = manifest[name]
        path = Path(args.models_dir) / entry["file"]

        def make(
            threads: int, name: str = name, entry: dict = entry, path: Path = path
        ) -> OnnxDetector:
            cfg = DetectorConfig(model=str(path), threads=threads)
            return OnnxDetector(path, cfg, manifest_entry=entry, name=name)

        det = make(args.threads)
        w, h = det.input_size
        print(
            f"### {name} ({det.spec.format.value}, {w}x{h}), batch 1, "
            f"{args.threads} threads, ms per frame\n"
        )
        print("| stage | wall median | wall p95 | CPU median |\n|---|---:|---:|---:|")
        print("\n".join(stage_table(det, frames)))
        print(
            f"\n### {name}: frames/s (CPU ms per frame), "
            f"{args.fps_frames} frames per cell\n"
        )
        print("| threads | batch 1 | batch 2 | batch 4 |\n|---|---:|---:|---:|")
        sub = frames[: args.fps_frames]
        for threads in (1, 2):
            d = make(threads)
            cells = [fps(d, sub, b) for b in (1, 2, 4)]
            print(f"| {threads} (one detector) | " + " | ".join(cells) + " |")
        two = [make(1), make(1)]
        print(
            f"| 2 detectors x 1 thread, concurrent | {fps_two_sessions(two, sub)} | | |"
        )
        print(f"\n### {name}: session options, raw inference (ms per frame)\n")
        print(
            "| session | wall | CPU | wall, +1 busy core | CPU, +1 busy core |"
            "\n|---|---:|---:|---:|---:|"
        )
        print("\n".join(session_table(path)))
        print()
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
