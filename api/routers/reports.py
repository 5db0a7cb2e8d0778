"""Reports: vehicle-flow traffic counts per bucket, class and direction.

Buckets are aligned to wall time in the time zone the caller asks for (``tz``, an
IANA name; UTC by default): a daily report for a school in New York counts from
local midnight to local midnight (23 or 25 hours on DST days), and an hourly one
in Kolkata starts on the local hour, not at hh:30. JSON by default; ``format=csv``
gives one row per bucket, line, direction and class for a spreadsheet.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zoneinfo
from collections import defaultdict
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response

from api.deps import CurrentUser, Store, as_utc
from api.schemas import TrafficBucket, TrafficReport

__all__ = ["router"]

router = APIRouter(prefix="/api/reports", tags=["reports"])

BUCKETS = {"5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "1d": 86400}
MAX_WINDOW = dt.timedelta(days=366)


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise HTTPException(400, f"tz: unknown time zone {name!r}") from exc


def bucket_floor(start: dt.datetime, step: int, tz: dt.tzinfo) -> dt.datetime:
    """Start of the report bucket holding ``start``, aligned to wall time in ``tz``.

    Args:
        start: An aware instant.
        step: Bucket length in seconds (a divisor of a day, or a day).
        tz: The report's time zone.

    Returns:
        The bucket's start, aware, in ``tz``: local midnight for daily buckets,
        otherwise the last multiple of ``step`` since local midnight (on a
        fall-back night the repeated hour's buckets stay apart by their UTC
        offset).
    """
    local = start.astimezone(tz)
    if step >= 86400:
        # Midnight can be skipped by a DST change in a few zones; resolve through
        # UTC so the result is a real instant.
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight.astimezone(dt.UTC).astimezone(tz)
    since_midnight = local.hour * 3600 + local.minute * 60 + local.second
    floored = since_midnight // step * step
    return local.replace(
        hour=floored // 3600,
        minute=floored % 3600 // 60,
        second=floored % 60,
        microsecond=0,
    )


@router.get(
    "/traffic",
    response_model=TrafficReport,
    responses={200: {"content": {"text/csv": {}}}},
)
def traffic(
    user: CurrentUser,
    store: Store,
    camera_id: Annotated[list[str] | None, Query(max_length=64)] = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    bucket: Literal["5m", "15m", "30m", "1h", "1d"] = "15m",
    tz: Annotated[str, Query(min_length=1, max_length=64)] = "UTC",
    format: Literal["json", "csv"] = "json",
) -> TrafficReport | Response:
    """Sum vehicle_flow counts per (camera, line, bucket, class, direction).

    Several events can exist for one bucket and line (a worker restarted inside the
    bucket); each row holds its event's latest revision, and they are summed.
    Buckets are aligned to wall time in ``tz`` (module docstring).
    """
    zone = _zone(tz)
    until_ = as_utc(until) if until else dt.datetime.now(dt.UTC)
    since_ = as_utc(since) if since else until_ - dt.timedelta(days=1)
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
        start = as_utc(dt.datetime.fromisoformat(p["bucket_start"]))
        if not since_ <= start < until_:
            continue
        # Keyed by the UTC instant: two aware datetimes of one zone compare (and
        # hash) by wall time, so the fall-back night's repeated hour would merge.
        floor = bucket_floor(start, step, zone).astimezone(dt.UTC)
        cin, cout = acc[(cam, p["line_id"], floor)]
        for cls, n in p.get("counts_in", {}).items():
            cin[cls] += n
        for cls, n in p.get("counts_out", {}).items():
            cout[cls] += n
    buckets = [
        TrafficBucket(
            camera_id=k[0],
            line_id=k[1],
            bucket_start=k[2].astimezone(zone),
            counts_in=dict(v[0]),
            counts_out=dict(v[1]),
        )
        for k, v in sorted(acc.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1]))
    ]
    store.audit(user.name, "export", "report", f"traffic:{bucket}:{tz}:{format}")
    if format == "csv":
        return Response(
            _csv(buckets),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="traffic.csv"'},
        )
    return TrafficReport(
        since=since_, until=until_, bucket_s=step, tz=tz, buckets=buckets
    )


def _csv(buckets: list[TrafficBucket]) -> str:
    """One row per bucket, line, direction and class counted.

    Camera and line ids are config identifiers and class names come from the
    detector, but a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
    return still gets a leading apostrophe so a spreadsheet never runs it as a
    formula (OWASP's CSV-injection list).
    """
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["bucket_start", "camera_id", "line_id", "direction", "class", "count"])
    for b in buckets:
        for direction, counts in (("in", b.counts_in), ("out", b.counts_out)):
            for cls in sorted(counts):
                w.writerow(
                    [
                        b.bucket_start.isoformat(),
                        _cell(b.camera_id),
                        _cell(b.line_id),
                        direction,
                        _cell(cls),
                        counts[cls],
                    ]
                )
    return out.getvalue()


def _cell(v: str) -> str:
    return "'" + v if v[:1] in ("=", "+", "-", "@", "\t", "\r") else v
