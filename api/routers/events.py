"""Event list/detail, media (snapshot, clip with HTTP Range), reviews, legal hold."""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse

from api.deps import (
    CurrentUser,
    Store,
    as_utc,
    event_for,
    get_media_root,
    require_role,
)
from api.schemas import EventOut, EventPage, HoldIn, MediaOut, ReviewIn, ReviewOut
from api.storage import EventFilter, StoreError, User, resolve_media
from monitor.events import EventKind, EventState, Severity

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/events", tags=["events"])

_RANGE_RE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})")
MediaRoot = Annotated[Path, Depends(get_media_root)]


def _event_out(row: dict[str, Any]) -> EventOut:
    base = f"/api/events/{row['id']}"
    urls = {
        "snapshot": f"{base}/snapshot.jpg",
        "snapshot_boxes": f"{base}/snapshot.jpg?boxes=true",
        "clip": f"{base}/clip.mp4",
    }
    media = [MediaOut(**m, url=urls[m["role"]]) for m in row.get("media", [])]
    return EventOut.model_validate({**row, "media": media})


@router.get("", response_model=EventPage)
def list_events(
    user: CurrentUser,
    store: Store,
    camera_id: Annotated[list[str] | None, Query(max_length=64)] = None,
    kind: EventKind | None = None,
    state: EventState | None = None,
    severity: Severity | None = None,
    review_status: Annotated[
        str | None, Query(pattern="^(new|acknowledged|dismissed|escalated)$")
    ] = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> EventPage:
    """Events newest first (``ts`` desc, then id); filters combine with AND."""
    flt = EventFilter(
        camera_ids=camera_id or (),
        kind=kind and str(kind),
        state=state and str(state),
        severity=severity and str(severity),
        review_status=review_status,
        since=as_utc(since) if since else None,
        until=as_utc(until) if until else None,
        scope=None if user.all_cameras else list(user.cameras),
    )
    try:
        rows, nxt = store.list_events(flt, limit=limit, cursor=cursor, offset=offset)
    except StoreError as exc:
        raise HTTPException(400, str(exc)) from None
    store.audit(user.name, "list", "events", f"n={len(rows)}")
    return EventPage(items=[_event_out(r) for r in rows], next_cursor=nxt)


@router.get("/{event_id}", response_model=EventOut)
def get_event(event_id: str, user: CurrentUser, store: Store) -> EventOut:
    """One event with its media list."""
    row = event_for(store, user, event_id)
    store.audit(user.name, "view", "event", str(row["id"]), row["camera_id"])
    return _event_out(row)


def _media_file(
    store: Store, user: User, media_root: Path, event_id: str, roles: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, Any], Path]:
    row = event_for(store, user, event_id)
    for role in roles:
        m = store.get_media(row["id"], role)
        if m is not None:
            break
    else:
        raise HTTPException(404, f"event has no {roles[0]}")
    # The path comes only from the database row, and must stay inside media_root.
    p = resolve_media(media_root, m["path"])
    if p is None or not p.is_file():
        log.warning(
            "media file of event %s missing or outside the media root", row["id"]
        )
        raise HTTPException(404, f"{m['role']} file is missing")
    return row, m, p


@router.get("/{event_id}/snapshot.jpg", response_class=FileResponse)
def snapshot(
    event_id: str,
    user: CurrentUser,
    store: Store,
    media_root: MediaRoot,
    boxes: bool = False,
) -> FileResponse:
    """The event's snapshot (``boxes=true``: the overlay variant when present)."""
    roles = ("snapshot_boxes", "snapshot") if boxes else ("snapshot",)
    row, m, p = _media_file(store, user, media_root, event_id, roles)
    store.audit(user.name, "view_snapshot", "event", str(row["id"]), row["camera_id"])
    return FileResponse(
        p, media_type="image/jpeg", headers={"ETag": f'"{m["sha256"]}"'}
    )


@router.get("/{event_id}/clip.mp4")
def clip(
    event_id: str,
    request: Request,
    user: CurrentUser,
    store: Store,
    media_root: MediaRoot,
) -> Response:
    """The event's MP4 clip, with single-range HTTP Range support."""
    row, m, p = _media_file(store, user, media_root, event_id, ("clip",))
    size = p.stat().st_size
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{m["sha256"]}"'}
    rng = request.headers.get("range")
    store.audit(user.name, "view_clip", "event", str(row["id"]), row["camera_id"])
    if not rng:
        return FileResponse(p, media_type="video/mp4", headers=headers)
    mt = _RANGE_RE.fullmatch(rng.strip())
    start = end = -1
    if mt and (mt[1] or mt[2]):
        if mt[1]:
            start = int(mt[1])
            end = min(int(mt[2]), size - 1) if mt[2] else size - 1
        elif int(mt[2]) > 0:  # suffix range: the last N bytes
            start, end = max(size - int(mt[2]), 0), size - 1
    if start < 0 or start >= size or end < start:
        return Response(
            status_code=416,
            content=b'{"error":"requested range not satisfiable"}',
            media_type="application/json",
            headers={**headers, "Content-Range": f"bytes */{size}"},
        )
    with p.open("rb") as fh:
        fh.seek(start)
        body = fh.read(end - start + 1)
    return Response(
        status_code=206,
        content=body,
        media_type="video/mp4",
        headers={**headers, "Content-Range": f"bytes {start}-{end}/{size}"},
    )


@router.post("/{event_id}/review", response_model=ReviewOut, status_code=201)
def review(
    event_id: str,
    body: ReviewIn,
    store: Store,
    user: Annotated[User, Depends(require_role("officer", "admin"))],
) -> ReviewOut:
    """Record acknowledge | dismiss | escalate (with an optional note)."""
    row = event_for(store, user, event_id)
    out = store.add_review(row["id"], user.name, body.action, body.note)
    if out is None:  # deleted in between
        raise HTTPException(404, "event not found")
    store.audit(
        user.name, f"review_{body.action}", "event", str(row["id"]), row["camera_id"]
    )
    return ReviewOut.model_validate(out)


@router.get("/{event_id}/reviews", response_model=list[ReviewOut])
def reviews(event_id: str, user: CurrentUser, store: Store) -> list[ReviewOut]:
    """Review history, oldest first."""
    row = event_for(store, user, event_id)
    store.audit(user.name, "view_reviews", "event", str(row["id"]), row["camera_id"])
    return [ReviewOut.model_validate(r) for r in store.reviews(row["id"])]


@router.post("/{event_id}/hold", response_model=EventOut)
def hold(
    event_id: str,
    store: Store,
    user: Annotated[User, Depends(require_role("admin"))],
    body: HoldIn | None = None,
) -> EventOut:
    """Set (default) or clear legal hold: held events survive retention."""
    on = True if body is None else body.hold
    row = event_for(store, user, event_id)
    store.set_hold(row["id"], on)
    store.audit(
        user.name, "hold" if on else "unhold", "event", str(row["id"]), row["camera_id"]
    )
    return _event_out(event_for(store, user, event_id))
