"""A minimal real RTSP server on loopback, for tests, benchmarks and demos.

It is not a camera emulator library: it is the smallest honest RTSP/1.0 server that
OpenCV's FFmpeg client talks to unmodified. For each mounted path one ``ffmpeg``
process (the imageio-ffmpeg binary) encodes a looping video file to H.264 and sends
RTP to a loopback UDP port; the server relays those packets to every playing client as
``$``-framed interleaved data over the RTSP TCP connection (RTP/AVP/TCP, the camera
transport this project defaults to). It answers OPTIONS, DESCRIBE (SDP), SETUP (TCP
interleaved only; UDP gets 461), PLAY, GET_PARAMETER and TEARDOWN.

Because we own the server we can also misbehave on purpose: require a password (Basic
auth, 401 otherwise), answer every connection with garbage bytes, accept and never
answer, be stopped (socket gone, clients cut) and started again on the same port, and
restart a stream's encoder at another resolution while clients stay connected.

``preencode=True`` (per stream) encodes the file once to an H.264 MPEG-TS cache (same
encoder settings, SPS/PPS in band at every key frame) and then only *copies* it to RTP
(``-c copy``): a real camera encodes on its own chip, so capacity benchmarks should not
charge the box under test ~0.3 core per stream for our encoders.

Run standalone: ``python -m monitor.rtsp_server VIDEO [--port 8554] [--path cam]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import contextlib
import functools
import hashlib
import logging
import os
import secrets as _secrets
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["RtspServer", "RtspServerError", "ffmpeg_exe"]

log = logging.getLogger(__name__)

Mode = Literal["normal", "garbage", "silent"]


class RtspServerError(RuntimeError):
    """The server (or a stream's encoder) could not start."""


def _die_with_parent() -> None:
    """Child side: SIGTERM this encoder when the server process dies (Linux)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux/glibc: best effort
        pass


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped by the imageio-ffmpeg wheel."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


class _RtpSink(asyncio.DatagramProtocol):
    def __init__(self, stream: _Stream, channel: int) -> None:
        self.stream = stream
        self.channel = channel

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.stream.relay(self.channel, data)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _starts_sps(rtp: bytes) -> bool:
    """Whether an H.264 RTP packet (RFC 6184) starts with a sequence parameter set."""
    if len(rtp) < 14:
        return False
    off = 12 + 4 * (rtp[0] & 0x0F)
    if rtp[0] & 0x10 and len(rtp) >= off + 4:  # header extension
        off += 4 + 4 * int.from_bytes(rtp[off + 2 : off + 4], "big")
    if len(rtp) <= off + 3:
        return False
    nal = rtp[off] & 0x1F
    if nal == 24:  # STAP-A: first aggregated NAL after its 2-byte size
        return rtp[off + 3] & 0x1F == 7
    if nal == 28:  # FU-A: start fragment of an SPS (never in practice) or IDR
        return bool(rtp[off + 1] & 0x80) and rtp[off + 1] & 0x1F in (5, 7)
    return nal == 7


@dataclass
class _Stream:
    path: str
    video: str
    loop: bool = True
    width: int | None = None
    fps: float | None = None
    gop: int = 25
    preencode: bool = False
    start_s: float = 0.0
    sdp: str = ""
    proc: subprocess.Popen[bytes] | None = None
    transports: list[asyncio.DatagramTransport] = field(default_factory=list)
    clients: set[asyncio.StreamWriter] = field(default_factory=set)
    # Clients that joined mid-GOP: they start at the next SPS, so that their decoder
    # never sees slices before the parameter sets (no "non-existing PPS" noise).
    pending: set[asyncio.StreamWriter] = field(default_factory=set)
    packets: int = 0
    paused: bool = False

    def relay(self, channel: int, data: bytes) -> None:
        self.packets += 1
        if self.paused:
            return
        if self.pending and channel == 0 and _starts_sps(data):
            self.clients |= self.pending
            self.pending.clear()
        if not self.clients:
            return
        frame = b"$" + bytes((channel,)) + len(data).to_bytes(2, "big") + data
        for w in list(self.clients):
            if w.is_closing():
                self.clients.discard(w)
                continue
            # A slow client must not grow our memory without bound: drop packets for
            # it (its decoder will show artefacts, like a real congested camera).
            if w.transport.get_write_buffer_size() > 4 * 1024 * 1024:
                continue
            w.write(frame)


class RtspServer:
    """Serve looping video files over RTSP on ``host:port`` (see module doc).

    Args:
        host: Listen address (loopback by default).
        port: TCP port; 0 picks a free one (kept across ``stop()``/``start()``).
        credentials: ``(username, password)`` required via Basic auth, or None.
        mode: ``normal``; ``garbage`` (every connection gets random bytes);
            ``silent`` (connections are accepted and never answered).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        credentials: tuple[str, str] | None = None,
        mode: Mode = "normal",
    ) -> None:
        self.host = host
        # Fix the port now so that URLs handed out before start() stay valid, and
        # stop()/start() come back on the same port like a rebooted camera.
        self.port = port or _free_port(host)
        self.credentials = credentials
        self.mode: Mode = mode
        self._streams: dict[str, _Stream] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._tmp = Path(tempfile.mkdtemp(prefix="hm-rtsp-"))

    # ------------------------------------------------------------------ public
    def add_stream(
        self,
        path: str,
        video: str | os.PathLike[str],
        *,
        loop: bool = True,
        width: int | None = None,
        fps: float | None = None,
        preencode: bool = False,
        start_s: float = 0.0,
    ) -> str:
        """Mount ``video`` at ``/path`` (started with the server). Returns its URL.

        ``preencode``: encode once to a cache and stream-copy it (see module doc).
        ``start_s``: with ``preencode``, start this far into the file (nearest key
        frame), so that cameras looping the same file are not in lock-step.
        """
        name = path.strip("/")
        if not Path(video).exists():
            raise RtspServerError(f"video {video} does not exist")
        self._streams[name] = _Stream(
            name, str(video), loop, width, fps, preencode=preencode, start_s=start_s
        )
        if self._loop is not None:
            self._call(self._start_stream(self._streams[name]))
        return self.url(name)

    def url(self, path: str, *, userinfo: str | None = None) -> str:
        """``rtsp://[userinfo@]host:port/path``."""
        auth = f"{userinfo}@" if userinfo else ""
        return f"rtsp://{auth}{self.host}:{self.port}/{path.strip('/')}"

    def start(self, timeout_s: float = 10.0) -> RtspServer:
        """Listen and start every stream's encoder; waits for the first RTP packet."""
        if self._loop is not None:
            return self
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="rtsp-server", daemon=True)
        self._thread.start()
        ready.wait()
        self._loop = loop
        try:
            self._call(self._listen(), timeout_s)
            for s in self._streams.values():
                if s.preencode:  # once, before the per-stream start timeout runs
                    self._preencoded(s)
            for s in self._streams.values():
                self._call(self._start_stream(s), timeout_s)
            self.wait_streaming(timeout_s)
        except BaseException:
            self.stop()
            raise
        log.info(
            "RTSP server on %s:%d (%d streams)",
            self.host,
            self.port,
            len(self._streams),
        )
        return self

    def wait_streaming(self, timeout_s: float = 10.0) -> None:
        """Block until every stream's encoder has produced RTP packets."""
        deadline = time.monotonic() + timeout_s
        for s in self._streams.values():
            while s.packets == 0:
                if s.proc is not None and s.proc.poll() is not None:
                    raise RtspServerError(
                        f"encoder for /{s.path} exited with code {s.proc.returncode}"
                    )
                if time.monotonic() > deadline:
                    raise RtspServerError(f"no RTP from the encoder for /{s.path}")
                time.sleep(0.02)

    def restart_stream(
        self, path: str, *, width: int | None = None, timeout_s: float = 10.0
    ) -> None:
        """Restart one stream's encoder (optionally at a new width); clients stay."""
        s = self._streams[path.strip("/")]
        s.width = width
        self._call(self._stop_stream(s, keep_clients=True), timeout_s)
        s.packets = 0
        self._call(self._start_stream(s), timeout_s)
        self.wait_streaming(timeout_s)

    def pause(self, path: str, paused: bool = True) -> None:
        """Stop (or resume) relaying packets; connections stay open (a stall)."""
        self._streams[path.strip("/")].paused = paused

    def stop(self) -> None:
        """Close the listening socket, cut every client and stop the encoders."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(Exception):
            self._call(self._shutdown(), 10.0)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        loop.close()
        self._loop = None
        self._thread = None
        log.info("RTSP server on port %d stopped", self.port)

    def close(self) -> None:
        """Stop and remove temporary files."""
        self.stop()
        import shutil

        shutil.rmtree(self._tmp, ignore_errors=True)

    def client_count(self, path: str) -> int:
        """Playing clients on ``path``."""
        return len(self._streams[path.strip("/")].clients)

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- internals
    def _call(self, coro: object, timeout_s: float = 10.0) -> object:
        assert self._loop is not None
        fut: concurrent.futures.Future[object] = asyncio.run_coroutine_threadsafe(
            coro,  # type: ignore[arg-type]
            self._loop,
        )
        return fut.result(timeout_s)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._conns):
            w.transport.abort()
        self._conns.clear()
        for s in self._streams.values():
            await self._stop_stream(s, keep_clients=False)

    async def _bind_pair(self, s: _Stream) -> int:
        loop = asyncio.get_running_loop()
        for _ in range(50):
            a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            if port % 2:
                a.close()
                continue
            b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                a.close()
                b.close()
                continue
            for sock, ch in ((a, 0), (b, 1)):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
                tr, _ = await loop.create_datagram_endpoint(
                    functools.partial(_RtpSink, s, ch), sock=sock
                )
                s.transports.append(tr)
            return port
        raise RtspServerError("no free UDP port pair for RTP")

    def _encode_args(self, s: _Stream) -> list[str]:
        vf = []
        if s.width:
            vf.append(f"scale={s.width}:-2")
        if s.fps:
            vf.append(f"fps={s.fps}")
        return [
            *(["-vf", ",".join(vf)] if vf else []),
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
            "-pix_fmt", "yuv420p", "-g", str(s.gop), "-bf", "0", "-threads", "1",
        ]  # fmt: skip

    def _preencoded(self, s: _Stream) -> Path:
        """Encode ``s.video`` once (per width/fps/gop) to an MPEG-TS cache file."""
        # Keyed by file and settings: paths that mount the same file share one cache.
        key = hashlib.sha1(str(Path(s.video).resolve()).encode()).hexdigest()[:12]
        out = self._tmp / f"{key}-{s.width or 0}-{s.fps or 0}-{s.gop}.ts"
        if out.exists():
            return out
        part = out.with_suffix(".part")
        cmd = [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-i", s.video, "-an", *self._encode_args(s), "-f", "mpegts", str(part),
        ]  # fmt: skip
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
        if done.returncode != 0 or not part.exists():
            raise RtspServerError(
                f"pre-encoding {s.video} for /{s.path} failed: "
                f"{done.stderr.decode(errors='replace').strip()[-300:]}"
            )
        part.rename(out)
        return out

    async def _start_stream(self, s: _Stream) -> None:
        port = await self._bind_pair(s)
        sdp_path = self._tmp / f"{s.path.replace('/', '_')}.sdp"
        sdp_path.unlink(missing_ok=True)
        if s.preencode:
            cached = await asyncio.get_running_loop().run_in_executor(
                None, self._preencoded, s
            )
            seek = ["-ss", f"{s.start_s:.3f}"] if s.start_s > 0 else []
            source, codec = [*seek, "-i", str(cached)], ["-c:v", "copy"]
        else:
            source, codec = ["-i", s.video, "-an"], self._encode_args(s)
        cmd = [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
            *(["-stream_loop", "-1"] if s.loop else []),
            *source, *codec,
            "-f", "rtp", "-payload_type", "96",
            f"rtp://127.0.0.1:{port}?pkt_size=1200&rtcpport={port + 1}",
            "-sdp_file", str(sdp_path),
        ]  # fmt: skip
        s.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            # A server killed hard (benchmarks, tests) must not leave encoders running.
            preexec_fn=_die_with_parent,
        )
        for _ in range(500):
            if sdp_path.exists() and sdp_path.stat().st_size > 0:
                break
            if s.proc.poll() is not None:
                raise RtspServerError(
                    f"encoder for /{s.path} exited with code {s.proc.returncode}"
                )
            await asyncio.sleep(0.01)
        else:
            raise RtspServerError(f"encoder for /{s.path} wrote no SDP")
        await asyncio.sleep(0.05)
        s.sdp = self._rewrite_sdp(sdp_path.read_text())

    async def _stop_stream(self, s: _Stream, *, keep_clients: bool) -> None:
        if s.proc is not None:
            s.proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.get_running_loop().run_in_executor(None, s.proc.wait, 5)
            s.proc = None
        for tr in s.transports:
            tr.close()
        s.transports.clear()
        if not keep_clients:
            for w in list(s.clients | s.pending):
                w.transport.abort()
            s.clients.clear()
            s.pending.clear()

    @staticmethod
    def _rewrite_sdp(sdp: str) -> str:
        out = []
        for line in sdp.splitlines():
            line = line.strip()
            if not line:
                continue
            if line.startswith("c="):
                line = "c=IN IP4 0.0.0.0"
            if line.startswith("m=video"):
                parts = line.split()
                parts[1] = "0"
                out.append(" ".join(parts))
                out.append("a=control:streamid=0")
                continue
            out.append(line)
        return "\r\n".join(out) + "\r\n"

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self.credentials is None:
            return True
        got = headers.get("authorization", "")
        if not got.lower().startswith("basic "):
            return False
        try:
            raw = base64.b64decode(got[6:].strip()).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return False
        user, _, pw = raw.partition(":")
        return (user, pw) == self.credentials

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._conns.add(writer)
        stream: _Stream | None = None
        try:
            if self.mode == "garbage":
                for _ in range(4):
                    writer.write(os.urandom(1024))
                    await writer.drain()
                    await asyncio.sleep(0.05)
                return
            if self.mode == "silent":
                await reader.read()  # until the client gives up
                return
            session = _secrets.token_hex(8)
            while True:
                first = await reader.readexactly(1)
                if first == b"$":  # interleaved RTCP from the client: skip it
                    hdr = await reader.readexactly(3)
                    await reader.readexactly(int.from_bytes(hdr[1:3], "big"))
                    continue
                head = first + await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, uri, _ = (lines[0].split(" ") + ["", ""])[:3]
                headers: dict[str, str] = {}
                for ln in lines[1:]:
                    if ":" in ln:
                        k, v = ln.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                if int(headers.get("content-length", "0") or 0):
                    await reader.readexactly(int(headers["content-length"]))
                cseq = headers.get("cseq", "0")
                reply, body = self._respond(method, uri, headers, session)
                if method == "PLAY" and reply.startswith("200"):
                    stream = self._stream_of(uri)
                msg = f"RTSP/1.0 {reply}\r\nCSeq: {cseq}\r\n"
                for k, v in body[0].items():
                    msg += f"{k}: {v}\r\n"
                content = body[1].encode()
                if content:
                    msg += f"Content-Length: {len(content)}\r\n"
                writer.write(msg.encode() + b"\r\n" + content)
                await writer.drain()
                if stream is not None and method == "PLAY":
                    stream.pending.add(writer)
                if method == "TEARDOWN":
                    return
        except (
            asyncio.IncompleteReadError,
            ConnectionError,
            asyncio.LimitOverrunError,
        ):
            pass
        finally:
            if stream is not None:
                stream.clients.discard(writer)
                stream.pending.discard(writer)
            self._conns.discard(writer)
            writer.transport.abort()

    def _stream_of(self, uri: str) -> _Stream | None:
        path = uri.split("://", 1)[-1].split("/", 1)[-1] if "://" in uri else uri
        path = path.strip("/")
        for name, s in self._streams.items():
            if path == name or path.startswith(name + "/"):
                return s
        return None

    def _respond(
        self, method: str, uri: str, headers: dict[str, str], session: str
    ) -> tuple[str, tuple[dict[str, str], str]]:
        if method == "OPTIONS":
            return "200 OK", (
                {"Public": "OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN"},
                "",
            )
        if method in {"DESCRIBE", "SETUP", "PLAY"} and not self._authorized(headers):
            return "401 Unauthorized", (
                {"WWW-Authenticate": 'Basic realm="hallmonitor-test"'},
                "",
            )
        stream = self._stream_of(uri)
        if method == "DESCRIBE":
            if stream is None or not stream.sdp:
                return "404 Not Found", ({}, "")
            base = uri.rstrip("/") + "/"
            return "200 OK", (
                {"Content-Base": base, "Content-Type": "application/sdp"},
                stream.sdp,
            )
        if method == "SETUP":
            transport = headers.get("transport", "")
            if "TCP" not in transport.upper():
                return "461 Unsupported Transport", ({}, "")
            return "200 OK", (
                {
                    "Transport": "RTP/AVP/TCP;unicast;interleaved=0-1",
                    "Session": f"{session};timeout=60",
                },
                "",
            )
        if method == "PLAY":
            if stream is None:
                return "404 Not Found", ({}, "")
            return "200 OK", ({"Session": session, "Range": "npt=0.000-"}, "")
        if method in {"GET_PARAMETER", "TEARDOWN"}:
            return "200 OK", ({"Session": session}, "")
        return "405 Method Not Allowed", ({}, "")


def main(argv: list[str] | None = None) -> int:
    """Serve one looping video until interrupted."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("video", nargs="+")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8554)
    p.add_argument("--path", default="cam", help="mount name (cam0, cam1 … for many)")
    p.add_argument("--width", type=int, default=None)
    p.add_argument(
        "--preencode", action="store_true", help="encode once, then stream-copy"
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    srv = RtspServer(args.host, args.port)
    for i, v in enumerate(args.video):
        name = args.path if len(args.video) == 1 else f"{args.path}{i}"
        srv.add_stream(name, v, width=args.width, preencode=args.preencode)
    srv.start()
    for name in srv._streams:
        log.info("serving %s", srv.url(name))
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        srv.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
