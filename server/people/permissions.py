"""Permissions held by operator accounts, and who is acting (:class:`Actor`).

Roles say what an account may see; a few acts also need a permission granted to the
account itself, so that no one person runs a payment from start to end:

* ``statements.compute`` — compute and store draft statements;
* ``statements.approve`` — approve a draft (never one the same account computed);
* ``statements.pay`` — mark an approved statement paid (never one the same account
  approved);
* ``accounts.admin`` — grant and revoke these permissions.

Only operator accounts hold permissions; auditors and contractors never do. Grants
and revocations are rows in ``account_permissions`` (a revocation closes its row, a
later grant is a new one) and entries in the audit log. ``epr-server user add`` gives
``accounts.admin`` to the first operator, so a fresh install has someone to grant the
rest.

An :class:`Actor` is an account together with the credential it proved itself with
(an API token, its password, a web login): every library function that decides money
takes one, checks the permission against the ledger (not against what the caller was
when it signed in) and writes both to the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.ledger import audit
from server.ledger.accounts import AccountPermission, User
from server.people.accounts import Account, AccountError, Role, find_user


class Permission(StrEnum):
    COMPUTE = "statements.compute"
    APPROVE = "statements.approve"
    PAY = "statements.pay"
    ADMIN = "accounts.admin"


_KNOWN = frozenset(p.value for p in Permission)


class PermissionDenied(PermissionError):
    """The account may not do this: no such permission, wrong role, or disabled."""


def permission(name: str) -> Permission:
    try:
        return Permission(name.strip())
    except ValueError:
        raise AccountError(
            f"permission {name!r}: one of {', '.join(p.value for p in Permission)}"
        ) from None


@dataclass(frozen=True, slots=True)
class Actor:
    """An account acting, and how it proved itself: ``token #12``, ``password`` (typed
    at the command line) or ``web session``."""

    account: Account
    credential: str

    @property
    def name(self) -> str:
        return self.account.username

    def audit_data(self) -> dict[str, Any]:
        """What the audit log records about the actor besides its name."""
        return {"account_id": self.account.id, "credential": self.credential}


def _active(session: Session, user_id: int) -> list[AccountPermission]:
    return list(
        session.scalars(
            select(AccountPermission)
            .where(AccountPermission.user_id == user_id, AccountPermission.revoked_at.is_(None))
            .order_by(AccountPermission.id)
        )
    )


def permissions_of(session: Session, user_id: int) -> frozenset[Permission]:
    return frozenset(
        Permission(row.permission) for row in _active(session, user_id) if row.permission in _KNOWN
    )


def all_permissions(session: Session) -> dict[int, frozenset[Permission]]:
    """Every account's permissions by user id (for lists)."""
    out: dict[int, set[Permission]] = {}
    for row in session.scalars(
        select(AccountPermission).where(AccountPermission.revoked_at.is_(None))
    ):
        if row.permission in _KNOWN:  # one this version no longer knows grants nothing
            out.setdefault(row.user_id, set()).add(Permission(row.permission))
    return {k: frozenset(v) for k, v in out.items()}


def require(session: Session, actor: Actor, needed: Permission) -> User:
    """The actor's user row, if it is an enabled operator holding ``needed`` now."""
    user = session.get(User, actor.account.id)
    if user is None or user.disabled_at is not None:
        raise PermissionDenied(f"account {actor.name} is disabled")
    if user.role != Role.OPERATOR.value:
        raise PermissionDenied(
            f"{actor.name} is a {user.role}: only an operator can hold {needed.value}"
        )
    if needed not in permissions_of(session, user.id):
        raise PermissionDenied(f"{actor.name} does not hold the permission {needed.value}")
    return user


def _target(session: Session, username: str) -> User:
    user = find_user(session, username)
    if user is None:
        raise AccountError(f"no user {username!r}")
    return user


def grant(
    session: Session,
    username: str,
    needed: Permission | str,
    *,
    by: Actor | str,
    now: datetime | None = None,
) -> bool:
    """Grant a permission to an operator; False if it already held it. ``by``: an
    :class:`Actor` holding ``accounts.admin``, or (the console, with the database's own
    credentials, like ``user add``) a plain description such as ``cli:root``."""
    perm = needed if isinstance(needed, Permission) else permission(needed)
    if isinstance(by, Actor):
        require(session, by, Permission.ADMIN)
    user = _target(session, username)
    if user.role != Role.OPERATOR.value:
        raise AccountError(
            f"{user.username} is a {user.role}: only operators can hold {perm.value}"
        )
    if user.disabled_at is not None:
        raise AccountError(f"user {user.username!r} is disabled")
    if perm in permissions_of(session, user.id):
        return False
    moment = now or datetime.now(UTC)
    who = by.name if isinstance(by, Actor) else by
    session.add(
        AccountPermission(
            user_id=user.id, permission=perm.value, granted_at=moment, granted_by=who[:100]
        )
    )
    session.flush()
    audit.append(
        session,
        actor=who,
        action="account.permission_granted",
        subject=f"user {user.username}",
        data={"user": user.username, "permission": perm.value}
        | (by.audit_data() if isinstance(by, Actor) else {"credential": "database"}),
        now=moment,
    )
    return True


def revoke(
    session: Session,
    username: str,
    needed: Permission | str,
    *,
    by: Actor | str,
    now: datetime | None = None,
) -> bool:
    """Revoke a permission; False if the account did not hold it."""
    perm = needed if isinstance(needed, Permission) else permission(needed)
    if isinstance(by, Actor):
        require(session, by, Permission.ADMIN)
    user = _target(session, username)
    rows = [r for r in _active(session, user.id) if r.permission == perm.value]
    if not rows:
        return False
    moment = now or datetime.now(UTC)
    who = by.name if isinstance(by, Actor) else by
    for row in rows:
        row.revoked_at, row.revoked_by = moment, who[:100]
    session.flush()
    audit.append(
        session,
        actor=who,
        action="account.permission_revoked",
        subject=f"user {user.username}",
        data={"user": user.username, "permission": perm.value}
        | (by.audit_data() if isinstance(by, Actor) else {"credential": "database"}),
        now=moment,
    )
    return True


def grant_first_admin(session: Session, account: Account, *, by: str) -> bool:
    """Give ``accounts.admin`` to ``account`` if it is an operator and no enabled account
    holds it yet (a fresh install's first operator); True if granted."""
    if account.role is not Role.OPERATOR:
        return False
    holders = session.scalars(
        select(User.id)
        .join(AccountPermission, AccountPermission.user_id == User.id)
        .where(
            AccountPermission.permission == Permission.ADMIN.value,
            AccountPermission.revoked_at.is_(None),
            User.disabled_at.is_(None),
        )
        .limit(1)
    ).first()
    if holders is not None:
        return False
    return grant(session, account.username, Permission.ADMIN, by=by)
