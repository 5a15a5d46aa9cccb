"""Request-scoped dependencies (``Annotated`` style), shared by the API and the pages.

* ``SessionDep`` — a ledger session for the request.
* ``OptionalPrincipal`` — the caller if authenticated (bearer token or login cookie),
  else None; cookie-authenticated unsafe requests are CSRF-checked here, once for all.
* ``CurrentUser`` — the signed-in :class:`~server.people.accounts.Account`, else 401 (the
  pages turn that into a redirect to the login form).
* ``RequireRole(*roles)`` — a dependency that admits only those roles (403 otherwise);
  ``OperatorDep`` and ``StaffDep`` (operator or auditor) are the common ones;
  ``ContractorDep`` for what a contractor does in its own name.
* ``ContractorScope`` — the caller's :class:`~server.people.accounts.Scope`: pass it to every
  query that returns contractor data. ``scope.visible(owner_bin, "statement 7")`` is the
  one rule for a single object: missing and another contractor's are the same
  :class:`~server.people.accounts.NotFound`, a 404 with the same words
  (``server/web/errors.py``).
* ``ActorDep`` — the caller as an :class:`~server.people.permissions.Actor` (account and
  credential), for library functions that check permissions and audit who acted.

And the shapes every route shares, so that a bad value is refused the same way
everywhere (422, never a database overflow or a calendar error):

* ``RowId`` — a ledger row id or sequence number in a path, query or body: 1 to 2^63 − 1
  (the database's BIGINT); ``TICKET_REF`` — ``DEVICE:SEQ`` with such a ``seq``.
* ``PERIOD_PATTERN`` and ``check_period`` — a month ``YYYY-MM`` the ledger can hold
  (years ``FIRST_YEAR`` to ``LAST_YEAR``).
* ``documented(...)`` — the error answers a route can give, for the OpenAPI schema.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Final

from annotated_types import Ge, Le
from fastapi import Depends, HTTPException, Request
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from server.api.auth import CSRF_FIELD, CSRF_HEADER, SAFE_METHODS, Auth, Principal
from server.people.accounts import Account, Role, Scope
from server.people.permissions import Actor, PermissionDenied

MAX_ROW_ID: Final = 2**63 - 1
RowId = Annotated[int, Ge(1), Le(MAX_ROW_ID)]
"""An id or sequence number as the ledger stores it (BIGINT); larger ones exist nowhere."""
TICKET_REF: Final = r"^(.+):([1-9][0-9]{0,17})$"
"""``DEVICE:SEQ``; 18 digits at most keep ``SEQ`` within :data:`MAX_ROW_ID`."""

PERIOD_PATTERN: Final = r"^20[0-9]{2}-(0[1-9]|1[0-2])$"
FIRST_YEAR: Final = 2000
LAST_YEAR: Final = 2099
"""The months the ledger can hold. Outside them a statement's window may not fit the
calendar (9999-12 ends in year 10000), and a preview far ahead walks every month up to
it (5294-10 took seconds): both are refused before any work."""


def check_period(period: str) -> None:
    """422 unless ``period`` is a month ``YYYY-MM`` within ``FIRST_YEAR``..``LAST_YEAR``."""
    if re.fullmatch(PERIOD_PATTERN, period) is None:
        raise HTTPException(
            422,
            detail=f"period {period!r} is not YYYY-MM from {FIRST_YEAR} to {LAST_YEAR}",
        )


def is_period(text: str) -> bool:
    try:
        check_period(text)
    except HTTPException:
        return False
    return True


class Problem(BaseModel):
    """An error answer: FastAPI's ``{"detail": ...}`` (a reason, or a list of problems)."""

    detail: Any


_ERRORS: Final = {
    400: "the body could not be parsed at all (not JSON, broken multipart)",
    401: "not signed in (no or bad token or login cookie)",
    403: "signed in, but not allowed (role, contractor scope, CSRF)",
    404: "no such object, or not the caller's to see",
    409: "the object's state does not allow the act",
    422: "a parameter or the body is not valid",
}


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route or router: these error answers, with their shape."""
    return {code: {"model": Problem, "description": _ERRORS[code]} for code in codes}


def _session(request: Request) -> Iterator[Session]:
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory() as session:
        yield session


SessionDep = Annotated[Session, Depends(_session)]


@contextmanager
def committed(
    session: Session, refused: type[Exception] | tuple[type[Exception], ...], status: int
) -> Iterator[None]:
    """One library action in the request's transaction: committed when it returns; when
    the library refuses it (``refused``), rolled back and answered with ``status`` and
    the library's reason."""
    try:
        yield
        session.commit()
    except PermissionDenied as exc:  # the account may not do this (permission, four eyes)
        session.rollback()
        raise HTTPException(403, detail=str(exc)) from None
    except refused as exc:
        session.rollback()
        raise HTTPException(status, detail=str(exc)) from None


def get_auth(request: Request) -> Auth:
    auth: Auth = request.app.state.auth
    return auth


AuthDep = Annotated[Auth, Depends(get_auth)]


async def _submitted_csrf(request: Request) -> str | None:
    """The CSRF token an unsafe request carries (header, or form field), if any."""
    if request.method in SAFE_METHODS:
        return None
    if header := request.headers.get(CSRF_HEADER):
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(CSRF_FIELD)  # parsed once, cached by Starlette
        return value if isinstance(value, str) else None
    return None


def _principal(
    request: Request,
    session: SessionDep,
    auth: AuthDep,
    csrf: Annotated[str | None, Depends(_submitted_csrf)],
) -> Principal | None:
    principal = auth.principal(request, session)
    session.commit()  # keeps the last-seen touch, ends the read transaction
    if (
        principal is not None
        and principal.via == "cookie"
        and request.method not in SAFE_METHODS
        and not auth.signer.csrf_ok(principal.anchor, csrf)
    ):
        raise HTTPException(403, detail="CSRF token missing or wrong: reload the page")
    return principal


OptionalPrincipal = Annotated[Principal | None, Depends(_principal)]


class NotAuthenticated(HTTPException):
    def __init__(self) -> None:
        super().__init__(
            401, detail="sign in, or send an API token", headers={"WWW-Authenticate": "Bearer"}
        )


def current_user(principal: OptionalPrincipal) -> Account:
    if principal is None:
        raise NotAuthenticated()
    return principal.account


CurrentUser = Annotated[Account, Depends(current_user)]


def current_actor(principal: OptionalPrincipal) -> Actor:
    if principal is None:
        raise NotAuthenticated()
    return principal.actor


ActorDep = Annotated[Actor, Depends(current_actor)]


class RequireRole:
    """``Depends(RequireRole(Role.OPERATOR))``: the current user, if in one of ``roles``."""

    def __init__(self, *roles: Role) -> None:
        self.roles = frozenset(roles)

    def __call__(self, user: CurrentUser) -> Account:
        if user.role not in self.roles:
            needed = " or ".join(sorted(r.value for r in self.roles))
            raise HTTPException(403, detail=f"needs the {needed} role")
        return user


OperatorDep = Annotated[Account, Depends(RequireRole(Role.OPERATOR))]
StaffDep = Annotated[Account, Depends(RequireRole(Role.OPERATOR, Role.AUDITOR))]
ContractorDep = Annotated[Account, Depends(RequireRole(Role.CONTRACTOR))]
"""Acts only a contractor does in its own name (opening a dispute): staff get 403."""


def _scope(user: CurrentUser) -> Scope:
    return user.scope


ContractorScope = Annotated[Scope, Depends(_scope)]
