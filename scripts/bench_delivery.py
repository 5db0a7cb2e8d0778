"""Delivery benchmark: worker XADD -> consumer -> committed row (SQLite, PostgreSQL).

Publisher processes XADD events (pipelined in small batches, like a worker's
publisher); one consumer process-thread stores them. Two runs per database:

* ``max``: publishers as fast as they can -> sustained events/s to committed rows;
* ``paced``: publishers at a fixed total rate -> latency p50/p95/p99 from the
  event's publish time (``Event.ts``) to the end of the commit that stored it;
* ``drain``: the stream is filled first, then the consumer starts -> consumer-only
  capacity (no publisher competing for the 2 cores); latency there is queueing.

Usage: python scripts/bench_delivery.py [--events 20000] [--rate 2000] [--pg URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import redis
import sqlalchemy as sa

from api.consumer import EventConsumer
from api.storage import EventStore
from monitor.events import Event, LoiteringPayload, encode_event


def _publisher(url: str, stream: str, n: int, rate: float, seed: int) -> None:
    r = redis.Redis.from_url(url)
    batch = 20
    sent = 0
    t0 = time.perf_counter()
    while sent < n:
        k = min(batch, n - sent)
        pipe = r.pipeline(transaction=False)
        now = dt.datetime.now(dt.UTC)
        for _ in range(k):
            ev = Event(
                event_id=uuid.uuid4(),
                camera_id=f"cam-{seed}",
                kind="loitering",
                state="start",
                ts=now,
                started_at=now,
                payload=LoiteringPayload(
                    rule_id="r", zone_id="z", tracker_id=sent, class_name="person",
                    dwell_s=3.0, bbox_xyxy=(1, 2, 3, 4), threshold_s=2.0,
                ),
            )  # fmt: skip
            pipe.xadd(stream, encode_event(ev), maxlen=1_000_000, approximate=True)
        pipe.execute()
        sent += k
        if rate > 0:
            ahead = sent / rate - (time.perf_counter() - t0)
            if ahead > 0:
                time.sleep(ahead)


class TimedStore(EventStore):
    """Records when each event's commit finished."""

    def __init__(self, *a, **kw) -> None:  # noqa: ANN002, ANN003
        super().__init__(*a, **kw)
        self.lat: list[float] = []
        self.first_commit = self.last_commit = 0.0

    def apply_events(self, events: Iterable[Event]) -> int:
        evs = list(events)
        n = super().apply_events(evs)
        t = time.time()
        self.first_commit = self.first_commit or t
        self.last_commit = t
        self.lat += [t - e.ts.timestamp() for e in evs]
        return n


def run(
    db_url: str, redis_url: str, n: int, rate: float, procs: int, drain: bool = False
) -> dict[str, float]:
    base = EventStore.from_url(db_url)
    store = TimedStore(base.engine)
    stream = f"bench:{uuid.uuid4().hex[:8]}"
    r = redis.Redis.from_url(redis_url)
    c = EventConsumer(r, store, stream=stream, group="g", consumer="c",
                      dead_letter_stream=stream + ":dead")  # fmt: skip
    c.ensure_groups()
    stop = threading.Event()
    th = threading.Thread(target=c.run, args=(stop,), daemon=True)
    t0 = time.time()
    if not drain:
        th.start()
    ps = [
        mp.Process(
            target=_publisher, args=(redis_url, stream, n // procs, rate / procs, i)
        )
        for i in range(procs)
    ]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    if drain:
        t0 = time.time()
        th.start()
    total = (n // procs) * procs
    while c.stats.stored < total and time.time() - t0 < 300:
        time.sleep(0.01)
    stop.set()
    th.join(5)
    r.delete(stream, stream + ":dead")
    lat = np.array(store.lat) * 1000
    base.close()
    return {
        "events": c.stats.stored,
        "rate": c.stats.stored / (store.last_commit - t0),
        "p50": float(np.percentile(lat, 50)),
        "p95": float(np.percentile(lat, 95)),
        "p99": float(np.percentile(lat, 99)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--rate", type=float, default=2000.0, help="paced run, events/s")
    ap.add_argument("--procs", type=int, default=2, help="publisher processes")
    ap.add_argument(
        "--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    dbs = {"sqlite": f"sqlite:///{tmp / 'ev.db'}"}
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    pg_admin = None
    try:
        pg_admin = sa.create_engine(a.pg)
        with pg_admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        dbs["postgresql"] = (
            sa.make_url(a.pg)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    except Exception as exc:  # noqa: BLE001
        print(f"PostgreSQL skipped: {type(exc).__name__}")
        pg_admin = None
    print(f"{a.events} events, {a.procs} publisher processes, {os.cpu_count()} CPUs")
    print("| database | run | events | events/s | p50 ms | p95 ms | p99 ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    try:
        for name, url in dbs.items():
            for mode, rate in (
                ("max", 0.0),
                (f"paced {a.rate:.0f}/s", a.rate),
                ("drain", 0.0),
            ):
                res = run(url, a.redis, a.events, rate, a.procs, drain=mode == "drain")
                print(
                    f"| {name} | {mode} | {res['events']} | {res['rate']:.0f} | "
                    f"{res['p50']:.1f} | {res['p95']:.1f} | {res['p99']:.1f} |",
                    flush=True,
                )
    finally:
        if pg_admin is not None:
            with pg_admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
