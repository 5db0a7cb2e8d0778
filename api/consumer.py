"""Redis Streams consumer: events and heartbeats into the EventStore.

Delivery contract:

* reads through a consumer group; XACKs only after the database commit, so a crash
  anywhere before the ack means redelivery, and redelivery is harmless because
  :meth:`EventStore.apply_events` is idempotent per event UUID;
* malformed, oversized or unknown-version messages go to the dead-letter stream at
  once (``XADD`` + ``XACK`` in one MULTI, so a crash cannot dead-letter twice);
* a message delivered more than ``max_deliveries`` times while the database is
  healthy is dead-lettered with its last error;
* a database outage does not burn delivery attempts: the decoded batch is held in
  memory and retried with back-off until the database answers again;
* pending entries idle for ``claim_idle_ms`` (a dead consumer's) are taken over
  with ``XAUTOCLAIM``; on start the consumer re-reads its own pending history.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis
import sqlalchemy as sa

from api.storage import EventStore
from monitor.events import (
    CameraHeartbeat,
    Event,
    MessageError,
    decode_event,
    decode_heartbeat,
)
from monitor.secrets import redact

__all__ = ["ConsumerStats", "EventConsumer", "decode_heartbeat"]

log = logging.getLogger(__name__)

DEAD_LETTER_DATA_BYTES = 4096
DEAD_LETTER_MAXLEN = 100_000


def _s(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


@dataclass
class ConsumerStats:
    """Counters since start."""

    stored: int = 0
    heartbeats: int = 0
    dead_lettered: int = 0
    claimed: int = 0
    db_errors: int = 0
    redis_errors: int = 0


@dataclass
class _Batch:
    """Decoded entries of one stream waiting for the database."""

    stream: str
    items: list[tuple[str, Event | CameraHeartbeat]] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [mid for mid, _ in self.items]

    @property
    def events(self) -> list[Event]:
        return [x for _, x in self.items if isinstance(x, Event)]

    @property
    def heartbeats(self) -> list[CameraHeartbeat]:
        return [x for _, x in self.items if isinstance(x, CameraHeartbeat)]


class EventConsumer:
    """Consume events (and heartbeats) from Redis Streams into an EventStore.

    Args:
        redis: Client (``decode_responses`` either way).
        store: Destination store.
        stream: Event stream key.
        group: Consumer group name (created at id ``0``, so nothing already queued
            is skipped).
        consumer: This consumer's name; reuse it across restarts so the pending
            history is re-read at once instead of waiting for ``claim_idle_ms``.
        heartbeat_stream: Optional heartbeat stream read by the same group.
        dead_letter_stream: Where undeliverable messages go (with the reason).
        max_deliveries: Deliveries after which a failing message is dead-lettered.
        claim_idle_ms: Idle time after which another consumer's pending entry is
            claimed.
        batch: Entries read per stream per call.
    """

    def __init__(
        self,
        redis: redis.Redis,
        store: EventStore,
        *,
        stream: str,
        group: str,
        consumer: str,
        heartbeat_stream: str | None = None,
        dead_letter_stream: str,
        max_deliveries: int = 5,
        claim_idle_ms: int = 30_000,
        batch: int = 500,
    ) -> None:
        if max_deliveries < 1:
            raise ValueError("max_deliveries must be >= 1")
        self.redis = redis
        self.store = store
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.heartbeat_stream = heartbeat_stream
        self.dead_letter_stream = dead_letter_stream
        self.max_deliveries = max_deliveries
        self.claim_idle_ms = claim_idle_ms
        self.batch = batch
        self.stats = ConsumerStats()
        self._streams = [stream] + ([heartbeat_stream] if heartbeat_stream else [])
        # Per stream: re-read our own pending history ("0") before new entries (">").
        self._history = dict.fromkeys(self._streams, True)
        self._claim_cursor = dict.fromkeys(self._streams, "0-0")
        self._last_claim = 0.0
        self._held: list[_Batch] = []  # decoded, not yet committed (DB outage)
        self._groups_ready = False
        self._last_errors: dict[str, str] = {}

    # ---------------------------------------------------------------- setup
    def ensure_groups(self) -> None:
        """Create the consumer group(s) (and streams) if missing."""
        for s in self._streams:
            try:
                self.redis.xgroup_create(s, self.group, id="0", mkstream=True)
                log.info("created consumer group %s on %s", self.group, s)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._groups_ready = True

    # ----------------------------------------------------------------- loop
    def run_once(self, block_ms: int = 1000) -> int:
        """Handle one round: held batch, claims, pending history, new entries.

        Returns:
            Number of stream entries handled (stored, acked or dead-lettered).

        Raises:
            redis.RedisError: Redis unreachable (``run`` retries with back-off).
        """
        if not self._groups_ready:
            self.ensure_groups()
        if self._held:
            return self._retry_held()
        handled = 0
        now = time.monotonic()
        if now - self._last_claim >= max(self.claim_idle_ms / 2000, 0.05):
            self._last_claim = now
            handled += self._claim()
        if self._held:
            return handled
        for s in self._streams:
            if self._history[s]:
                handled += self._read_history(s)
                if self._held:
                    return handled
        try:
            resp: Any = self.redis.xreadgroup(
                self.group,
                self.consumer,
                dict.fromkeys(self._streams, ">"),
                count=self.batch,
                block=None if handled else block_ms,
            )
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):  # Redis lost the group (restart without AOF)
                log.warning("consumer group missing; recreating")
                self._groups_ready = False
                return handled
            raise
        for s, entries in resp or []:
            handled += self._handle(_s(s), entries, counts=None)
        return handled

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set, surviving Redis and database outages."""
        backoff = 0.1
        while not stop.is_set():
            try:
                self.run_once(block_ms=500)
                backoff = 0.1
            except redis.RedisError as exc:
                self.stats.redis_errors += 1
                log.warning(
                    "redis unavailable (%s); retrying in %.1f s",
                    type(exc).__name__,
                    backoff,
                )
                self._groups_ready = False
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:  # noqa: BLE001 - the loop must survive anything
                log.exception("consumer round failed; retrying in %.1f s", backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    # ------------------------------------------------------------- reading
    def _read_history(self, s: str) -> int:
        resp: Any = self.redis.xreadgroup(
            self.group, self.consumer, {s: "0"}, count=self.batch
        )
        entries = resp[0][1] if resp else []
        if not entries:
            self._history[s] = False
            return 0
        return self._handle(s, entries, counts=self._delivery_counts(s, entries))

    def _claim(self) -> int:
        handled = 0
        for s in self._streams:
            try:
                res: Any = self.redis.xautoclaim(
                    s,
                    self.group,
                    self.consumer,
                    min_idle_time=self.claim_idle_ms,
                    start_id=self._claim_cursor[s],
                    count=self.batch,
                )
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc):
                    self._groups_ready = False
                    return handled
                raise
            cursor, entries = _s(res[0]), res[1]
            self._claim_cursor[s] = cursor
            # Entries trimmed (MAXLEN) before anyone stored them: their data is gone.
            # Redis 7 drops them from the PEL itself (listed in res[2]); 6.2 returns
            # them with nil fields and keeps them pending. Either way they are made
            # visible in the dead-letter stream instead of vanishing silently.
            gone = [_s(e[0]) for e in entries if e is not None and e[1] is None]
            if len(res) > 2:
                gone += [_s(x) for x in res[2] or []]
            if gone:
                reason = "entry trimmed from the stream before it was stored"
                self._dead_letter(s, [(mid, {}, reason) for mid in gone])
            entries = [e for e in entries if e is not None and e[1] is not None]
            if entries:
                self.stats.claimed += len(entries)
                log.info("claimed %d idle pending entries on %s", len(entries), s)
                handled += self._handle(
                    s, entries, counts=self._delivery_counts(s, entries)
                )
        return handled

    def _delivery_counts(self, s: str, entries: list[Any]) -> dict[str, int]:
        ids = [_s(e[0]) for e in entries]
        rows = self.redis.xpending_range(
            s, self.group, min=ids[0], max=ids[-1], count=max(len(ids), 1) * 2
        )
        return {_s(r["message_id"]): int(r["times_delivered"]) for r in rows}

    # ------------------------------------------------------------ handling
    def _handle(self, s: str, entries: list[Any], counts: dict[str, int] | None) -> int:
        batch = _Batch(s)
        dead: list[tuple[str, dict[Any, Any], str]] = []
        for raw_id, fields in entries:
            mid = _s(raw_id)
            fields = fields or {}
            n = counts.get(mid, 1) if counts else 1
            if n > self.max_deliveries:
                why = self._last_errors.pop(mid, "unknown error")
                dead.append((mid, fields, f"failed {n - 1} deliveries: {why}"[:1000]))
                continue
            try:
                typ = _s(fields.get("type", fields.get(b"type", "")))
                item: Event | CameraHeartbeat = (
                    decode_heartbeat(fields)
                    if typ == "heartbeat"
                    else decode_event(fields)
                )
                batch.items.append((mid, item))
            except MessageError as exc:
                dead.append((mid, fields, exc.reason))
        if dead:
            self._dead_letter(s, dead)
        if batch.items:
            self._commit(batch)
        return len(entries)

    def _commit(self, batch: _Batch) -> bool:
        try:
            if batch.events:
                self.store.apply_events(batch.events)
            if batch.heartbeats:
                self.store.apply_heartbeats(batch.heartbeats)
        except sa.exc.SQLAlchemyError as exc:
            self.stats.db_errors += 1
            if self.store.ping(write=True):
                # The database is up, so some entry itself fails: commit one by one
                # and leave the failing ones pending (their delivery count decides).
                log.warning("batch commit failed (%s); isolating", type(exc).__name__)
                self._commit_singly(batch)
                return True
            log.warning(
                "database unavailable (%s); holding %d entries",
                type(exc).__name__,
                len(batch.ids),
            )
            self._held.append(batch)
            return False
        self._ack(batch.stream, batch.ids)
        self.stats.stored += len(batch.events)
        self.stats.heartbeats += len(batch.heartbeats)
        return True

    def _commit_singly(self, batch: _Batch) -> None:
        ok: list[str] = []
        for i, (mid, item) in enumerate(batch.items):
            try:
                if isinstance(item, Event):
                    self.store.apply_event(item)
                else:
                    self.store.upsert_heartbeat(item)
                ok.append(mid)
            except sa.exc.SQLAlchemyError as exc:
                if not self.store.ping(write=True):
                    # The outage began mid-batch: hold the rest, do not count it.
                    self._held.append(_Batch(batch.stream, batch.items[i:]))
                    break
                self._last_errors[mid] = f"database error {type(exc).__name__}"
                log.warning("entry %s failed to store (%s)", mid, type(exc).__name__)
                self._history[batch.stream] = True
        self._ack(batch.stream, ok)

    def _retry_held(self) -> int:
        if not self.store.ping(write=True):
            time.sleep(0.2)
            return 0
        held, self._held = self._held, []
        n = 0
        for b in held:
            if not self._commit(b):
                # still failing: keep the rest too
                self._held.extend(held[held.index(b) + 1 :])
                break
            n += len(b.ids)
        if n:
            log.info("database back; committed %d held entries", n)
        return n

    def _ack(self, s: str, ids: list[str]) -> None:
        if ids:
            self.redis.xack(s, self.group, *ids)

    def _dead_letter(self, s: str, dead: list[tuple[str, dict[Any, Any], str]]) -> None:
        pipe = self.redis.pipeline(transaction=True)
        for mid, fields, reason in dead:
            data = fields.get("data", fields.get(b"data", b""))
            raw = (
                data
                if isinstance(data, bytes)
                else str(data).encode("utf-8", "replace")
            )
            # Whatever a broken worker sent may hold a camera URL with credentials.
            kept = redact(raw[:DEAD_LETTER_DATA_BYTES].decode("utf-8", "replace"))
            pipe.xadd(
                self.dead_letter_stream,
                {
                    "stream": s,
                    "original_id": mid,
                    "reason": reason,
                    "type": _s(fields.get("type", fields.get(b"type", "")))[:50],
                    "v": _s(fields.get("v", fields.get(b"v", "")))[:20],
                    "data": kept,
                    "data_bytes": str(len(raw)),
                },
                maxlen=DEAD_LETTER_MAXLEN,
                approximate=True,
            )
            pipe.xack(s, self.group, mid)
        pipe.execute()
        self.stats.dead_lettered += len(dead)
        for mid, _f, reason in dead:
            log.warning("dead-lettered %s from %s: %s", mid, s, reason[:200])


def main(argv: list[str] | None = None) -> int:
    """Run a standalone consumer process (used by the fault test and benchmark)."""
    p = argparse.ArgumentParser(description="hallmonitor event consumer")
    p.add_argument("--redis-url", required=True)
    p.add_argument("--db-url", required=True)
    p.add_argument("--stream", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--consumer", default="consumer-1")
    p.add_argument("--heartbeat-stream")
    p.add_argument("--dead-letter-stream", required=True)
    p.add_argument("--max-deliveries", type=int, default=5)
    p.add_argument("--claim-idle-ms", type=int, default=30_000)
    p.add_argument("--busy-timeout-ms", type=int, default=5000)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    store = EventStore.from_url(a.db_url, busy_timeout_ms=a.busy_timeout_ms)
    r = redis.Redis.from_url(a.redis_url, socket_timeout=5, socket_connect_timeout=2)
    c = EventConsumer(
        r,
        store,
        stream=a.stream,
        group=a.group,
        consumer=a.consumer,
        heartbeat_stream=a.heartbeat_stream,
        dead_letter_stream=a.dead_letter_stream,
        max_deliveries=a.max_deliveries,
        claim_idle_ms=a.claim_idle_ms,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    c.run(stop)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
