"""Accounts and their permissions: listed for operators, granted and revoked by an
account holding ``accounts.admin`` (the library checks it, and audits every change)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from server.api.deps import ActorDep, OperatorDep, SessionDep, committed, documented
from server.people.accounts import AccountError, find_user, list_users
from server.people.permissions import (
    Permission,
    all_permissions,
    grant,
    permissions_of,
    revoke,
)

router = APIRouter(prefix="/api/v1/accounts", tags=["accounts"])


class GrantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # An enum, so an unknown name is a 422 like any other malformed field.
    permission: Permission = Field(description="the permission to grant")


@router.get("")
def accounts(session: SessionDep, _: OperatorDep) -> list[dict[str, Any]]:
    held = all_permissions(session)
    return [
        {
            "username": u.username,
            "display_name": u.display_name,
            "role": u.role,
            "contractor_bin": u.contractor_bin,
            "disabled": u.disabled_at is not None,
            "permissions": sorted(p.value for p in held.get(u.id, ())),
        }
        for u in list_users(session)
    ]


def _user_or_404(session: SessionDep, username: str) -> None:
    if find_user(session, username) is None:
        raise HTTPException(404, detail=f"no user {username!r}")


def _held(session: SessionDep, username: str) -> dict[str, Any]:
    user = find_user(session, username)
    if user is None:
        raise HTTPException(404, detail=f"no user {username!r}")
    return {
        "username": user.username,
        "permissions": sorted(p.value for p in permissions_of(session, user.id)),
    }


@router.post("/{username}/permissions", responses=documented(400, 404, 409))
def grant_permission(
    session: SessionDep, _: OperatorDep, actor: ActorDep, username: str, body: GrantRequest
) -> dict[str, Any]:
    _user_or_404(session, username)
    with committed(session, AccountError, 409):
        grant(session, username, body.permission, by=actor)
    return _held(session, username)


@router.delete("/{username}/permissions/{permission}", responses=documented(404, 409))
def revoke_permission(
    session: SessionDep, _: OperatorDep, actor: ActorDep, username: str, permission: Permission
) -> dict[str, Any]:
    _user_or_404(session, username)
    with committed(session, AccountError, 409):
        revoke(session, username, permission, by=actor)
    return _held(session, username)
