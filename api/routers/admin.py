"""Admin-only: dead letters, audit log."""

from __future__ import annotations

from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends, HTTPException, Query, Request

from api.deps import Store, require_role
from api.schemas import AuditOut, DeadLetterOut
from api.storage import User
from monitor.secrets import redact

__all__ = ["router"]

router = APIRouter(tags=["admin"])
Admin = Annotated[User, Depends(require_role("admin"))]


def _s(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


@router.get("/api/admin/dead-letters", response_model=list[DeadLetterOut])
def dead_letters(
    request: Request,
    user: Admin,
    store: Store,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DeadLetterOut]:
    """Newest dead-lettered messages with the reason they were refused."""
    r: redis.Redis | None = request.app.state.redis
    if r is None:
        raise HTTPException(503, "no Redis configured")
    try:
        entries: Any = r.xrevrange(
            request.app.state.settings.dead_letter_stream, count=limit
        )
    except redis.RedisError:
        raise HTTPException(503, "Redis unavailable") from None
    store.audit(user.name, "view", "dead_letters", f"n={len(entries)}")
    out = []
    for eid, fields in entries:
        f = {_s(k): _s(v) for k, v in fields.items()}
        out.append(
            DeadLetterOut(
                id=_s(eid),
                stream=f.get("stream", ""),
                original_id=f.get("original_id", ""),
                reason=redact(f.get("reason", "")),
                type=f.get("type", ""),
                v=f.get("v", ""),
                data=redact(f.get("data", "")),
                data_bytes=int(f.get("data_bytes", "0") or 0),
            )
        )
    return out


@router.get("/api/audit", response_model=list[AuditOut])
def audit(
    user: Admin,
    store: Store,
    user_name: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[AuditOut]:
    """Audit rows, newest first."""
    rows = store.list_audit(user=user_name, limit=limit, offset=offset)
    return [AuditOut.model_validate(r) for r in rows]
