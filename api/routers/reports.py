"""Reports: vehicle-flow traffic counts per bucket, class and direction."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query

from api.deps import CurrentUser, Store
from api.schemas import TrafficBucket, TrafficReport

__all__ = ["router"]

router = APIRouter(prefix="/api/reports", tags=["reports"])

BUCKETS = {"5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "1d": 86400}
MAX_WINDOW = dt.timedelta(days=366)


def _utc(v: dt.datetime) -> dt.datetime:
    return v.replace(tzinfo=dt.UTC) if v.tzinfo is None else v.astimezone(dt.UTC)


@router.get("/traffic", response_model=TrafficReport)
def traffic(
    user: CurrentUser,
    store: Store,
    camera_id: Annotated[list[str] | None, Query(max_length=64)] = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    bucket: Literal["5m", "15m", "30m", "1h", "1d"] = "15m",
) -> TrafficReport:
    """Sum vehicle_flow counts per (camera, line, bucket, class, direction).

    Several events can exist for one bucket and line (a worker restarted inside the
    bucket); each row holds its event's latest revision, and they are summed.
    """
    until_ = _utc(until) if until else dt.datetime.now(dt.UTC)
    since_ = _utc(since) if since else until_ - dt.timedelta(days=1)
    if since_ >= until_ or until_ - since_ > MAX_WINDOW:
        raise HTTPException(400, "since must be before until, at most 366 days apart")
    if camera_id:
        cams: list[str] | None = [c for c in camera_id if user.can_see(c)]
    else:
        cams = None if user.all_cameras else list(user.cameras)
    step = BUCKETS[bucket]
    acc: dict[tuple[str, str, dt.datetime], tuple[dict[str, int], dict[str, int]]] = (
        defaultdict(lambda: (defaultdict(int), defaultdict(int)))
    )
    for cam, p in store.flow_payloads(cams, since_, until_):
        start = _utc(dt.datetime.fromisoformat(p["bucket_start"]))
        if not since_ <= start < until_:
            continue
        floor = dt.datetime.fromtimestamp(int(start.timestamp()) // step * step, dt.UTC)
        cin, cout = acc[(cam, p["line_id"], floor)]
        for cls, n in p.get("counts_in", {}).items():
            cin[cls] += n
        for cls, n in p.get("counts_out", {}).items():
            cout[cls] += n
    buckets = [
        TrafficBucket(
            camera_id=k[0],
            line_id=k[1],
            bucket_start=k[2],
            counts_in=dict(v[0]),
            counts_out=dict(v[1]),
        )
        for k, v in sorted(acc.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1]))
    ]
    store.audit(user.name, "export", "report", f"traffic:{bucket}")
    return TrafficReport(since=since_, until=until_, bucket_s=step, buckets=buckets)
