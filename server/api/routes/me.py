"""The caller's own account."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from server.api.deps import CurrentUser, SessionDep
from server.people.permissions import permissions_of

router = APIRouter(prefix="/api/v1", tags=["accounts"])


@router.get("/me")
def me(session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    return {
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role.value,
        "contractor_bin": user.contractor_bin,
        "permissions": sorted(p.value for p in permissions_of(session, user.id)),
    }
