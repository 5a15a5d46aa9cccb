"""Accounts (operators): who may sign in, in which role, with which permissions; an
account administrator (``accounts.admin``) grants and revokes permissions here.

Grants and revocations are ``server.people.permissions.grant`` / ``revoke`` as the
signed-in account, which the library checks and audits; a refusal (not an
administrator, not an operator, unknown permission) is a message and changes nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import Response

from server.api.deps import ActorDep, OperatorDep, SessionDep
from server.people.accounts import AccountError, list_users
from server.people.permissions import (
    Permission,
    PermissionDenied,
    all_permissions,
    grant,
    permissions_of,
    revoke,
)
from server.web.render import PageDep

router = APIRouter(include_in_schema=False)

PermissionField = Annotated[str, Form(max_length=32)]


@router.get("/accounts")
def accounts_page(page: PageDep, session: SessionDep, user: OperatorDep) -> Response:
    return page.render(
        "accounts/list.html",
        users=list_users(session),
        held=all_permissions(session),
        permissions=list(Permission),
        admin=Permission.ADMIN in permissions_of(session, user.id),
    )


def _change(
    page: PageDep,
    session: SessionDep,
    actor: ActorDep,
    username: str,
    permission: str,
    *,
    granting: bool,
) -> Response:
    change = grant if granting else revoke
    return page.act(
        session,
        "/accounts",
        lambda: change(session, username, permission, by=actor),
        (AccountError, PermissionDenied),
        lambda changed: page.t(
            ("accounts.granted" if granting else "accounts.revoked")
            if changed
            else "accounts.unchanged",
            user=username,
            permission=permission,
            who=actor.name,
        ),
    )


@router.post("/accounts/{username}/grant")
def grant_permission(
    page: PageDep,
    session: SessionDep,
    _: OperatorDep,
    actor: ActorDep,
    username: str,
    permission: PermissionField = "",
) -> Response:
    return _change(page, session, actor, username, permission, granting=True)


@router.post("/accounts/{username}/revoke")
def revoke_permission(
    page: PageDep,
    session: SessionDep,
    _: OperatorDep,
    actor: ActorDep,
    username: str,
    permission: PermissionField = "",
) -> Response:
    return _change(page, session, actor, username, permission, granting=False)
