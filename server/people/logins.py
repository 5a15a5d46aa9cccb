"""Browser logins: random tokens whose digests are stored, with absolute and idle expiry."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.ledger.accounts import LoginSession, User
from server.people.accounts import Account

#: last_seen_at is written at most this often, so browsing is not a stream of writes.
_TOUCH_EVERY: Final = timedelta(seconds=60)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Login:
    account: Account
    token_hash: str


def open_login(
    session: Session,
    account: Account,
    *,
    ttl_s: int,
    remote_addr: str = "",
    user_agent: str = "",
    now: datetime | None = None,
) -> str:
    """Start a login; returns the token for the cookie (shown once, stored as a digest)."""
    moment = now or datetime.now(UTC)
    token = secrets.token_urlsafe(32)
    session.add(
        LoginSession(
            token_hash=digest(token),
            user_id=account.id,
            created_at=moment,
            expires_at=moment + timedelta(seconds=ttl_s),
            last_seen_at=moment,
            remote_addr=remote_addr[:64],
            user_agent=user_agent[:200],
        )
    )
    session.flush()
    return token


def resolve_login(
    session: Session, token: str, *, idle_s: int, now: datetime | None = None
) -> Login | None:
    """The account behind a login token, or None if unknown, ended, expired, idle or disabled."""
    moment = now or datetime.now(UTC)
    row = session.execute(
        select(LoginSession, User)
        .join(User, User.id == LoginSession.user_id)
        .where(LoginSession.token_hash == digest(token))
    ).one_or_none()
    if row is None:
        return None
    login, user = row
    if (
        login.revoked_at is not None
        or user.disabled_at is not None
        or moment >= login.expires_at
        or moment - login.last_seen_at >= timedelta(seconds=idle_s)
    ):
        return None
    if moment - login.last_seen_at >= _TOUCH_EVERY:
        login.last_seen_at = moment
        session.flush()
    return Login(Account.of(user), login.token_hash)


def close_login(session: Session, token: str, *, now: datetime | None = None) -> None:
    login = session.scalar(select(LoginSession).where(LoginSession.token_hash == digest(token)))
    if login is not None and login.revoked_at is None:
        login.revoked_at = now or datetime.now(UTC)
        session.flush()
