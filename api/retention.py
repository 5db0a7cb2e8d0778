"""Periodic retention: delete events and media older than retention_days."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from api.storage import EventStore

__all__ = ["retention_loop", "run_retention"]

log = logging.getLogger(__name__)


def run_retention(store: EventStore, retention_days: float) -> tuple[int, int]:
    """One retention pass; returns (events, files) deleted."""
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=retention_days)
    return store.purge(cutoff)


async def retention_loop(
    store: EventStore, retention_days: float, every_s: float
) -> None:
    """Run :func:`run_retention` every ``every_s`` seconds until cancelled."""
    while True:
        try:
            await asyncio.to_thread(run_retention, store, retention_days)
        except Exception:  # noqa: BLE001 - keep the loop; the next pass retries
            log.exception("retention pass failed")
        await asyncio.sleep(every_s)
