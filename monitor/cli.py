"""The ``hallmonitor`` command line.

Commands: ``check-config``, ``replay``, ``run``, ``models``, ``users``,
``config-reference``. Every command has ``--help``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monitor.events import CameraHeartbeat, Event

__all__ = ["main"]

log = logging.getLogger("hallmonitor")

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_CONFIG = 2


def _setup_logging(level: str) -> None:
    from monitor.logs import setup_logging

    setup_logging(level)


def _load(path: str) -> Any:
    """Load a config or exit 2 with every problem printed to stderr."""
    from config.loader import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        for issue in exc.issues:
            sys.stderr.write(f"{issue}\n")
        raise SystemExit(EXIT_CONFIG) from None


# ------------------------------------------------------------------ check-config
def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate config files; print every error with file, line and field."""
    from config.loader import ConfigError, load_config

    status = EXIT_OK
    for path in args.files:
        try:
            cfg = load_config(path)
        except ConfigError as exc:
            for issue in exc.issues:
                sys.stderr.write(f"{issue}\n")
            status = EXIT_CONFIG
            continue
        cams = ", ".join(c.id for c in cfg.cameras)
        sys.stdout.write(f"{path}: OK ({len(cfg.cameras)} camera(s): {cams})\n")
    return status


# ------------------------------------------------------------------ replay
class _StdoutSink:
    """Writes each event as one JSON line; optionally forwards to another sink."""

    def __init__(self, forward: Any | None = None) -> None:
        self.forward = forward
        self.count = 0

    def publish(self, event: Event) -> None:
        sys.stdout.write(event.model_dump_json() + "\n")
        sys.stdout.flush()
        self.count += 1
        if self.forward is not None:
            self.forward.publish(event)

    def publish_heartbeat(self, hb: CameraHeartbeat) -> None:
        if self.forward is not None:
            self.forward.publish_heartbeat(hb)


def cmd_replay(args: argparse.Namespace) -> int:
    """Run one camera's pipeline over a video file as fast as possible."""
    from monitor.worker import build_parts, run_camera

    _setup_logging(args.log_level)
    app = _load(args.config)
    try:
        camera = app.camera(args.camera) if args.camera else app.cameras[0]
    except KeyError:
        sys.stderr.write(
            f"{args.config}: no camera {args.camera!r} "
            f"(have: {', '.join(c.id for c in app.cameras)})\n"
        )
        return EXIT_CONFIG
    video = Path(args.video)
    if not video.is_file():
        sys.stderr.write(f"{video}: no such video file\n")
        return EXIT_FAIL
    src = camera.source.model_copy(
        # A replay reads the file once, as fast as possible.
        update={
            "url": str(video.resolve()),
            "credentials": None,
            "loop": False,
            "realtime": False,
        }
    )
    camera = camera.model_copy(update={"source": src})
    if args.detect_fps:
        camera = camera.model_copy(update={"detect_fps": args.detect_fps})
    if args.media_dir:
        storage = app.storage.model_copy(
            update={"media_dir": str(Path(args.media_dir).resolve())}
        )
        app = app.model_copy(update={"storage": storage})
    publisher = None
    if args.publish:
        from monitor.publisher import EventPublisher

        url = args.redis_url or app.redis.url or os.environ.get("REDIS_URL")
        if not url:
            sys.stderr.write("--publish needs --redis-url or REDIS_URL\n")
            return EXIT_CONFIG
        publisher = EventPublisher(
            url,
            stream=app.redis.stream,
            heartbeat_stream=app.redis.heartbeat_stream,
            maxlen=app.redis.maxlen,
            spool_dir=Path(app.data_dir) / "spool" / f"replay-{camera.id}",
            spool_max_events=app.redis.spool_max_events,
        )
    sink = _StdoutSink(publisher)
    parts = build_parts(
        app, camera, sink, replay=True, evidence=bool(args.media_dir or args.publish)
    )
    try:
        stats = run_camera(
            camera,
            parts,
            threading.Event(),
            replay=True,
            max_frames=args.max_frames,
            model_sha256=parts.detector.model_sha256,
            heartbeat_s=3600.0,
        )
    finally:
        parts.close()
        if publisher is not None:
            publisher.close()
    log.info(
        "replay done: %d frames, %d detector calls, %d events",
        stats.frames,
        stats.detector_calls,
        sink.count,
    )
    return EXIT_OK


# ------------------------------------------------------------------ run
def cmd_run(args: argparse.Namespace) -> int:
    """Start everything on one box: workers, consumer and API."""
    from monitor.app_runner import run_all

    _setup_logging(args.log_level)
    app = _load(args.config)
    return run_all(
        app,
        config_path=str(Path(args.config).resolve()),
        host=args.host,
        port=args.port,
        duration_s=args.duration,
    )


# ------------------------------------------------------------------ users
def cmd_users_add(args: argparse.Namespace) -> int:
    """Create an API user and print its token once."""
    from monitor.app_runner import open_store

    app = _load(args.config)
    store = open_store(app)
    cameras = [c.strip() for c in args.cameras.split(",") if c.strip()]
    token = store.create_user(args.name, args.role, cameras)
    sys.stdout.write(f"{token}\n")
    return EXIT_OK


# ------------------------------------------------------------------ config-reference
def cmd_config_reference(args: argparse.Namespace) -> int:
    """Print the config reference (Markdown) generated from the schema."""
    from config.reference import render_reference

    sys.stdout.write(render_reference())
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    p = argparse.ArgumentParser(
        prog="hallmonitor",
        description="Campus camera monitoring: loitering and vehicle-flow events.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("check-config", help="validate config files (exit 2 on errors)")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.set_defaults(func=cmd_check_config)

    r = sub.add_parser(
        "replay",
        help="run one camera's pipeline over a video, print events as JSON lines",
    )
    r.add_argument("video", metavar="VIDEO")
    r.add_argument("--config", required=True, metavar="FILE")
    r.add_argument(
        "--camera", help="camera id whose zones/rules to use (default: first)"
    )
    r.add_argument("--detect-fps", type=float, help="override the camera's detect_fps")
    r.add_argument("--max-frames", type=int, help="stop after N processed frames")
    r.add_argument("--media-dir", help="write snapshots/clips here")
    r.add_argument(
        "--publish", action="store_true", help="also publish events to Redis"
    )
    r.add_argument("--redis-url", help="Redis URL for --publish (default: REDIS_URL)")
    r.add_argument("--log-level", default="WARNING")
    r.set_defaults(func=cmd_replay)

    run = sub.add_parser("run", help="start workers, consumer and API on this box")
    run.add_argument("--config", required=True, metavar="FILE")
    run.add_argument("--host", help="API host (default: config api.host)")
    run.add_argument("--port", type=int, help="API port (default: config api.port)")
    run.add_argument(
        "--duration", type=float, help="stop after N seconds (demos, tests)"
    )
    run.add_argument("--log-level", default="INFO")
    run.set_defaults(func=cmd_run)

    u = sub.add_parser("users", help="manage API users")
    usub = u.add_subparsers(dest="users_command", required=True, metavar="SUBCOMMAND")
    ua = usub.add_parser("add", help="create a user and print its API token")
    ua.add_argument("name")
    ua.add_argument("--config", required=True, metavar="FILE")
    ua.add_argument("--role", choices=["viewer", "officer", "admin"], default="officer")
    ua.add_argument("--cameras", default="*", help="comma-separated camera ids, or *")
    ua.set_defaults(func=cmd_users_add)

    ref = sub.add_parser(
        "config-reference", help="print the config reference (Markdown)"
    )
    ref.set_defaults(func=cmd_config_reference)

    try:
        from monitor.models_cli import register
    except ImportError:  # pragma: no cover - present once the detector lands
        pass
    else:
        register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hallmonitor`` script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
