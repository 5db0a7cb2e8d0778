"""Request dependencies: the store, the caller, role checks, object lookup."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from api.settings import ApiSettings
from api.storage import EventStore, User

__all__ = ["CurrentUser", "event_for", "get_store", "get_user", "require_role"]


def as_utc(v: dt.datetime) -> dt.datetime:
    """A query-parameter time in UTC; a time without a zone is taken as UTC."""
    return v.replace(tzinfo=dt.UTC) if v.tzinfo is None else v.astimezone(dt.UTC)


def get_store(request: Request) -> EventStore:
    """The app's EventStore."""
    return request.app.state.store


def get_settings(request: Request) -> ApiSettings:
    """The app's settings."""
    return request.app.state.settings


def get_media_root(request: Request) -> Path:
    """The app's media root."""
    return request.app.state.media_root


def get_user(request: Request) -> User:
    """The caller, from ``Authorization: Bearer <token>`` (401 otherwise)."""
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
    user = get_store(request).user_for_token(token.strip())
    if user is None:
        raise HTTPException(
            401, "invalid or disabled token", headers={"WWW-Authenticate": "Bearer"}
        )
    return user


CurrentUser = Annotated[User, Depends(get_user)]
Store = Annotated[EventStore, Depends(get_store)]


def require_role(*roles: str) -> Callable[[User], User]:
    """Dependency: the caller must hold one of ``roles`` (403 otherwise)."""

    def dep(user: CurrentUser) -> User:
        if user.role not in roles:
            raise HTTPException(403, f"requires role {' or '.join(roles)}")
        return user

    return dep


def parse_event_id(event_id: str) -> uuid.UUID:
    """The UUID in a path segment (400 when it is not one)."""
    try:
        if len(event_id) > 40:
            raise ValueError
        return uuid.UUID(event_id)
    except ValueError:
        raise HTTPException(400, "event id must be a UUID") from None


def event_for(store: EventStore, user: User, event_id: str) -> dict[str, Any]:
    """The event row if it exists AND is inside the caller's camera scope.

    Out-of-scope events answer 404 like missing ones, so ids do not leak.
    """
    row = store.get_event(parse_event_id(event_id))
    if row is None or not user.can_see(row["camera_id"]):
        raise HTTPException(404, "event not found")
    return row
