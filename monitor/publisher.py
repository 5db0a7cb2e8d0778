"""Publish events to Redis Streams without ever blocking the frame path.

``publish`` only appends to a bounded in-memory queue; one background sender thread
``XADD``\\s batches (``MAXLEN ~ maxlen``). While Redis is unreachable the sender moves
events into an append-only disk spool under ``spool_dir`` and probes Redis with
backoff; when it answers again the spool is flushed first, oldest first, so the
stream keeps the order in which the worker produced the events.

Delivery is at-least-once: a crash between an ``XADD`` and the spool cursor update
re-sends that batch on restart; consumers apply events idempotently by
``(event_id, revision)``.

Spool layout (one directory per worker)::

    spool_dir/lock                 flock held by the live publisher
    spool_dir/seg-000000000007.jsonl   one JSON object (the stream fields) per line
    spool_dir/cursor.json          {"segment": name, "offset": bytes already sent}

Segments are only ever appended to; a new instance never appends to an old segment,
so a torn last line left by a crash (no trailing newline, or not JSON) is skipped on
reload and never glued to a new record.

Bound: at most ``spool_max_events`` events on disk. Past the bound the **newest**
events are dropped and counted (``stats().dropped``): the spool is append-only, so
dropping the oldest would mean rewriting files during an outage, and the oldest
events are the ones that opened incidents (``start`` messages) that later messages
refer to. The in-memory queue is bounded too (``queue_max``); it only fills if the
disk itself stalls, and its overflow is counted in the same ``dropped``.
"""

from __future__ import annotations

import collections
import fcntl
import json
import logging
import os
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from monitor.events import (
    MAX_MESSAGE_BYTES,
    CameraHeartbeat,
    Event,
    encode_event,
    encode_heartbeat,
)

__all__ = ["EventPublisher", "PublisherStats", "redact_url"]

log = logging.getLogger(__name__)

_BATCH = 256  # events per XADD pipeline / spool read
_PROBE_MIN_S = 0.1
_PROBE_MAX_S = 2.0
_SEGMENT_MAX_LINES = 5000


def redact_url(url: str) -> str:
    """``scheme://host:port/db`` of a Redis URL, without user, password or query."""
    try:
        p = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid redis url>"
    if p.scheme == "unix":
        return f"unix://{p.path}"
    host = p.hostname or ""
    port = f":{p.port}" if p.port else ""
    return f"{p.scheme}://{host}{port}{p.path}"


@dataclass(frozen=True, slots=True)
class PublisherStats:
    """Counters of one publisher.

    Attributes:
        published: Events ``XADD``\\ed since this instance started (spool included).
        spooled: Events currently waiting in the disk spool.
        dropped: Events discarded past the spool / queue bound (exact count).
        redis_ok: Whether the last Redis operation succeeded.
        queued: Events in the in-memory queue, not yet sent or spooled.
        heartbeats_sent: Heartbeats ``XADD``\\ed.
        corrupt_skipped: Spool lines that were torn or not valid JSON on reload.
        rejected: Events refused by ``publish`` (larger than the message limit).
    """

    published: int
    spooled: int
    dropped: int
    redis_ok: bool
    queued: int = 0
    heartbeats_sent: int = 0
    corrupt_skipped: int = 0
    rejected: int = 0


class _Spool:
    """Append-only, crash-safe FIFO of JSON lines in segment files.

    Only the sender thread (or ``close`` after the sender stopped) touches it; the
    lock still guards it so ``stats`` can read ``pending`` at any time.
    """

    def __init__(self, directory: Path, max_events: int) -> None:
        self.dir = directory
        self.max_events = max_events
        self.lock = threading.Lock()
        self.pending = 0
        self.corrupt = 0
        self._writer: Any = None
        self._writer_name: str | None = None
        self._writer_lines = 0
        self._segments: list[str] = sorted(
            p.name for p in self.dir.glob("seg-*.jsonl") if p.is_file()
        )
        self._next_seq = 1 + max(
            (int(n[4:-6]) for n in self._segments if n[4:-6].isdigit()), default=0
        )
        self._cursor_seg, self._cursor_off = self._load_cursor()
        self._count_pending()

    # ---------------------------------------------------------------- load
    def _load_cursor(self) -> tuple[str | None, int]:
        path = self.dir / "cursor.json"
        try:
            raw = json.loads(path.read_text("utf-8"))
            seg, off = str(raw["segment"]), int(raw["offset"])
        except FileNotFoundError:
            return None, 0
        except (ValueError, KeyError, TypeError, OSError) as exc:
            # A broken cursor re-sends a segment (at-least-once); never lose data.
            log.warning("spool cursor %s unreadable (%s); starting at 0", path, exc)
            return None, 0
        if seg not in self._segments:
            return None, 0
        # Segments before the cursor were fully sent but not yet deleted.
        for name in self._segments[: self._segments.index(seg)]:
            (self.dir / name).unlink(missing_ok=True)
        self._segments = self._segments[self._segments.index(seg) :]
        return seg, off

    def _count_pending(self) -> None:
        total = 0
        for name in self._segments:
            off = self._cursor_off if name == self._cursor_seg else 0
            with open(self.dir / name, "rb") as fh:
                fh.seek(off)
                total += fh.read().count(b"\n")  # a torn tail has no newline
        self.pending = total
        if total:
            log.info(
                "spool %s: %d events from a previous run to flush", self.dir, total
            )

    # --------------------------------------------------------------- write
    def append(self, lines: list[str]) -> int:
        """Append lines (FIFO); return how many were dropped past the bound."""
        room = max(0, self.max_events - self.pending)
        keep, dropped = lines[:room], len(lines) - min(room, len(lines))
        if keep:
            if self._writer is None or self._writer_lines >= _SEGMENT_MAX_LINES:
                self._open_writer()
            data = "".join(line + "\n" for line in keep).encode("utf-8")
            self._writer.write(data)
            self._writer.flush()
            os.fsync(self._writer.fileno())
            self._writer_lines += len(keep)
            self.pending += len(keep)
        return dropped

    def _open_writer(self) -> None:
        self.close_writer()
        name = f"seg-{self._next_seq:012d}.jsonl"
        self._next_seq += 1
        self._writer = open(self.dir / name, "ab")  # noqa: SIM115 - long-lived
        self._writer_name = name
        self._writer_lines = 0
        self._segments.append(name)

    def close_writer(self) -> None:
        """Stop appending to the current segment (the next append opens a new one)."""
        if self._writer is not None:
            self._writer.close()
        self._writer = None
        self._writer_name = None

    # ---------------------------------------------------------------- read
    def peek(self, n: int) -> tuple[list[str], str | None, int, int]:
        """Up to ``n`` complete lines from the head and the cursor after them.

        Returns:
            ``(lines, segment, offset, consumed)``: pass the last three to
            :meth:`commit` once the lines were delivered. Lines that are not JSON
            are skipped here (counted in ``consumed`` and ``corrupt``).
        """
        while self._segments:
            seg = self._segments[0]
            if seg == self._writer_name:
                self.close_writer()  # never read a segment that is still growing
            off = self._cursor_off if seg == self._cursor_seg else 0
            with open(self.dir / seg, "rb") as fh:
                fh.seek(off)
                # Events are small (< 256 KiB each); read a bounded chunk.
                chunk = fh.read(max(1, n) * 4096)
                more = fh.read(1) != b""
            end = chunk.rfind(b"\n")
            if end < 0 and more:
                with open(self.dir / seg, "rb") as fh:  # one very long line
                    fh.seek(off)
                    chunk = fh.read()
                end = chunk.rfind(b"\n")
            if end < 0:
                # Segment consumed (what remains is a torn tail): drop the file.
                if chunk:
                    self.corrupt += 1
                    log.warning(
                        "spool %s: skipping torn last line of %s", self.dir, seg
                    )
                self._drop_head()
                continue
            raw_lines = chunk[: end + 1].split(b"\n")[:-1]
            raw_lines = raw_lines[:n]
            consumed = sum(len(r) + 1 for r in raw_lines)
            out: list[str] = []
            for raw in raw_lines:
                try:
                    text = raw.decode("utf-8")
                    json.loads(text)
                except ValueError:
                    self.corrupt += 1
                    log.warning(
                        "spool %s: skipping a corrupt line in %s", self.dir, seg
                    )
                    continue
                out.append(text)
            return out, seg, off + consumed, len(raw_lines)
        return [], None, 0, 0

    def commit(self, seg: str, offset: int, n_lines: int) -> None:
        """Record that everything before ``offset`` in ``seg`` was delivered."""
        self._cursor_seg, self._cursor_off = seg, offset
        self.pending = max(0, self.pending - n_lines)
        size = (self.dir / seg).stat().st_size
        if offset >= size and seg != self._writer_name:
            self._drop_head()
        else:
            self._write_cursor()

    def _drop_head(self) -> None:
        seg = self._segments.pop(0)
        self._cursor_seg, self._cursor_off = (
            (self._segments[0], 0) if self._segments else (None, 0)
        )
        # Cursor first: a crash after it but before the unlink leaves a segment
        # that the next load deletes as "before the cursor".
        self._write_cursor()
        (self.dir / seg).unlink(missing_ok=True)

    def _write_cursor(self) -> None:
        path = self.dir / "cursor.json"
        if self._cursor_seg is None:
            path.unlink(missing_ok=True)
            return
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"segment": self._cursor_seg, "offset": self._cursor_off}),
            "utf-8",
        )
        os.replace(tmp, path)


class EventPublisher:
    """Send events and heartbeats to Redis Streams from a background thread.

    Args:
        redis_url: ``redis://``, ``rediss://`` or ``unix://`` URL.
        stream: Events stream key.
        heartbeat_stream: Heartbeats stream key.
        maxlen: Approximate stream bound (``XADD MAXLEN ~``).
        spool_dir: Directory of this worker's disk spool (created).
        spool_max_events: Most events kept on disk; newer ones are dropped and counted.
        connect_timeout_s: Connect and socket timeout of every Redis call.
        queue_max: Bound of the in-memory queue between ``publish`` and the sender.

    Raises:
        RuntimeError: another live publisher holds ``spool_dir``.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        stream: str,
        heartbeat_stream: str,
        maxlen: int,
        spool_dir: Path,
        spool_max_events: int,
        connect_timeout_s: float = 2.0,
        queue_max: int = 10_000,
    ) -> None:
        self.stream = stream
        self.heartbeat_stream = heartbeat_stream
        self.maxlen = int(maxlen)
        self._where = redact_url(redis_url)
        self._timeout = float(connect_timeout_s)
        # No client-side retries: the spool is the retry mechanism, and a retry loop
        # inside redis-py would hold the sender for many timeouts per batch.
        self._redis = redis.Redis.from_url(
            redis_url,
            socket_connect_timeout=self._timeout,
            socket_timeout=self._timeout,
            retry=Retry(NoBackoff(), 0),
        )
        spool_dir = Path(spool_dir)
        spool_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fh = open(spool_dir / "lock", "a")  # noqa: SIM115 - held for life
        try:
            fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_fh.close()
            raise RuntimeError(
                f"spool directory {spool_dir} is in use by another publisher"
            ) from None
        self._spool = _Spool(spool_dir, max(0, int(spool_max_events)))
        self._queue: collections.deque[str] = collections.deque()
        self._queue_max = max(1, int(queue_max))
        self._cond = threading.Condition()
        self._hb: dict[str, str] | None = None
        self._published = 0
        self._dropped = 0
        self._hb_sent = 0
        self._rejected = 0
        self._redis_ok = True  # optimistic until a call fails
        self._next_probe = 0.0
        self._backoff = _PROBE_MIN_S
        self._stop = False
        self._deadline = float("inf")
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name=f"publisher:{stream}", daemon=True
        )
        self._thread.start()

    # ------------------------------------------------------------ frame path
    def publish(self, event: Event) -> None:
        """Queue one event; returns at once and never raises on Redis trouble.

        Raises:
            TypeError: ``event`` is not an :class:`~monitor.events.Event`.
        """
        if not isinstance(event, Event):
            raise TypeError(f"publish() needs an Event, got {type(event).__name__}")
        fields = encode_event(event)
        if len(fields["data"].encode("utf-8")) > MAX_MESSAGE_BYTES:
            # The consumer would dead-letter it; refuse here, visibly and counted.
            log.error(
                "event %s is larger than %d bytes; not published",
                event.event_id,
                MAX_MESSAGE_BYTES,
            )
            with self._cond:
                self._rejected += 1
            return
        line = json.dumps(fields, separators=(",", ":"))
        with self._cond:
            if self._closed:
                log.warning("publish after close: event %s dropped", event.event_id)
                self._dropped += 1
                return
            if len(self._queue) >= self._queue_max:
                self._dropped += 1
                if self._dropped == 1 or self._dropped % 1000 == 0:
                    log.warning(
                        "publisher queue full (%d): %d events dropped so far",
                        self._queue_max,
                        self._dropped,
                    )
                return
            self._queue.append(line)
            self._cond.notify()

    def publish_heartbeat(self, hb: CameraHeartbeat) -> None:
        """Send a heartbeat best effort: not spooled, a newer one replaces it.

        The publisher's own spool/drop counters are filled in when the caller left
        them at zero, so the camera wall shows delivery trouble.
        """
        st = self.stats()
        upd: dict[str, int] = {}
        if hb.events_spooled == 0 and st.spooled:
            upd["events_spooled"] = st.spooled
        if hb.events_dropped == 0 and st.dropped:
            upd["events_dropped"] = st.dropped
        if upd:
            hb = hb.model_copy(update=upd)
        fields = encode_heartbeat(hb)
        with self._cond:
            self._hb = fields
            self._cond.notify()

    def stats(self) -> PublisherStats:
        """Current counters (cheap, thread-safe)."""
        with self._cond:
            queued, published, dropped = (
                len(self._queue),
                self._published,
                self._dropped,
            )
            ok, hb, rejected = self._redis_ok, self._hb_sent, self._rejected
        return PublisherStats(
            published=published,
            spooled=self._spool.pending,
            dropped=dropped,
            redis_ok=ok,
            queued=queued,
            heartbeats_sent=hb,
            corrupt_skipped=self._spool.corrupt,
            rejected=rejected,
        )

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush what can be sent within ``timeout_s``; spool the rest to disk.

        Whatever is still on disk afterwards is sent by the next publisher that
        opens the same ``spool_dir``.
        """
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._stop = True
            self._deadline = time.monotonic() + max(0.0, timeout_s)
            self._cond.notify()
        # One Redis call may still be in flight past the deadline.
        self._thread.join(max(0.0, timeout_s) + self._timeout + 1.0)
        if self._thread.is_alive():  # pragma: no cover - a wedged socket
            log.error("publisher sender did not stop; queued events may be lost")
        else:
            with self._cond:
                rest = list(self._queue)
                self._queue.clear()
            if rest:
                self._spool_lines(rest)
        with self._spool.lock:
            self._spool.close_writer()
        st = self.stats()
        log.info(
            "publisher closed: %d published, %d left in spool, %d dropped",
            st.published,
            st.spooled,
            st.dropped,
        )
        self._redis.close()
        self._lock_fh.close()  # releases the flock

    # ------------------------------------------------------------ sender
    def _run(self) -> None:
        while True:
            with self._cond:
                while not (
                    self._queue
                    or self._hb is not None
                    or self._stop
                    or (self._spool.pending and time.monotonic() >= self._next_probe)
                ):
                    wait = (
                        max(0.01, self._next_probe - time.monotonic())
                        if self._spool.pending
                        else None
                    )
                    self._cond.wait(wait)
                batch = [
                    self._queue.popleft() for _ in range(min(_BATCH, len(self._queue)))
                ]
                hb, self._hb = self._hb, None
                stopping, deadline = self._stop, self._deadline
            try:
                self._step(batch, hb)
            except Exception:  # noqa: BLE001 - the sender must survive anything
                log.exception("publisher sender error")
                if batch:
                    self._spool_lines(batch)
                time.sleep(0.1)
            if stopping:
                with self._cond:
                    empty = not self._queue
                if empty and (
                    not self._spool.pending
                    or not self._redis_ok
                    or time.monotonic() >= deadline
                ):
                    return
                if time.monotonic() >= deadline:
                    return  # close() spools what is left in the queue

    def _probe_due(self) -> bool:
        return self._redis_ok or time.monotonic() >= self._next_probe

    def _step(self, batch: list[str], hb: dict[str, str] | None) -> None:
        if batch:
            if self._spool.pending or not self._probe_due():
                self._spool_lines(batch)  # keep FIFO behind what is on disk
            elif not self._send(batch):
                self._spool_lines(batch)
        if self._spool.pending and self._probe_due():
            self._flush_spool()
        if hb is not None and self._redis_ok:
            try:
                self._redis.xadd(
                    self.heartbeat_stream,
                    dict[Any, Any](hb),
                    maxlen=self.maxlen,
                    approximate=True,
                )
                with self._cond:
                    self._hb_sent += 1
            except redis.RedisError as exc:
                self._mark_down(exc)

    def _send(self, lines: list[str]) -> bool:
        """XADD a batch; False (and Redis marked down) on failure."""
        try:
            pipe = self._redis.pipeline(transaction=False)
            for line in lines:
                pipe.xadd(
                    self.stream, json.loads(line), maxlen=self.maxlen, approximate=True
                )
            pipe.execute()
        except redis.RedisError as exc:
            self._mark_down(exc)
            return False
        with self._cond:
            self._published += len(lines)
            if not self._redis_ok:
                log.info("redis %s reachable again", self._where)
            self._redis_ok = True
            self._backoff = _PROBE_MIN_S
        return True

    def _flush_spool(self) -> None:
        while True:
            with self._cond:
                if self._stop and time.monotonic() >= self._deadline:
                    return
            with self._spool.lock:
                lines, seg, off, n_raw = self._spool.peek(_BATCH)
            if seg is None:
                return
            if lines and not self._send(lines):
                return
            with self._spool.lock:
                self._spool.commit(seg, off, n_raw)

    def _spool_lines(self, lines: list[str]) -> None:
        try:
            with self._spool.lock:
                dropped = self._spool.append(lines)
        except OSError as exc:
            log.error("spool write failed (%s): %d events dropped", exc, len(lines))
            dropped = len(lines)
        if dropped:
            with self._cond:
                first = self._dropped == 0
                self._dropped += dropped
            if first:
                log.warning(
                    "spool full (%d events): dropping the newest events",
                    self._spool.max_events,
                )

    def _mark_down(self, exc: Exception) -> None:
        with self._cond:
            if self._redis_ok:
                log.warning(
                    "redis %s unreachable (%s); spooling events to %s",
                    self._where,
                    exc.__class__.__name__,
                    self._spool.dir,
                )
            self._redis_ok = False
            self._next_probe = time.monotonic() + self._backoff
            self._backoff = min(_PROBE_MAX_S, self._backoff * 2)
