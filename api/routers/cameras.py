"""Camera wall: latest heartbeat per camera."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends

from api.deps import CurrentUser, Store, get_settings
from api.schemas import CameraOut
from api.settings import ApiSettings
from monitor.secrets import redact

__all__ = ["router"]

router = APIRouter(prefix="/api/cameras", tags=["cameras"])


@router.get("", response_model=list[CameraOut])
def cameras(
    user: CurrentUser,
    store: Store,
    settings: Annotated[ApiSettings, Depends(get_settings)],
) -> list[CameraOut]:
    """Cameras in scope; a heartbeat older than 3x the interval shows offline."""
    now = dt.datetime.now(dt.UTC)
    stale_after = dt.timedelta(seconds=3 * settings.heartbeat_interval_s)
    out = []
    for r in store.heartbeats(None if user.all_cameras else list(user.cameras)):
        d = r["data"]
        stale = now - r["ts"] > stale_after
        out.append(
            CameraOut(
                camera_id=r["camera_id"],
                state="offline" if stale else r["state"],
                stale=stale,
                ts=r["ts"],
                fps_in=d.get("fps_in", 0.0),
                fps_out=d.get("fps_out", 0.0),
                frames_dropped=d.get("frames_dropped", 0),
                reconnects_1h=d.get("reconnects_1h", 0),
                last_frame_ts=d.get("last_frame_ts"),
                message=redact(d.get("message", "")),
            )
        )
    return out
