"""API bearer tokens: made by ``epr-server token create``, stored as SHA-256 digests."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.ledger.accounts import ApiToken, User
from server.people.accounts import Account, AccountError, find_user
from server.people.logins import digest

#: Recognisable in logs and secret scanners; the rest is 32 random bytes.
TOKEN_PREFIX: Final = "epr_"  # noqa: S105 - a public prefix, not a secret
_TOUCH_EVERY: Final = timedelta(seconds=60)


def create_token(
    session: Session,
    username: str,
    *,
    label: str = "",
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> tuple[str, ApiToken]:
    """Make a token for ``username``; the token itself is returned once and never stored."""
    user = find_user(session, username)
    if user is None:
        raise AccountError(f"no user {username!r}")
    if user.disabled_at is not None:
        raise AccountError(f"user {user.username!r} is disabled")
    moment = now or datetime.now(UTC)
    if expires_at is not None and expires_at <= moment:
        raise AccountError("the token would expire before it is made")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        token_hash=digest(token),
        prefix=token[:12],
        user_id=user.id,
        label=label.strip()[:100],
        created_at=moment,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return token, row


def token_account(session: Session, token: str, *, now: datetime | None = None) -> Account | None:
    """The account behind a bearer token, or None if unknown, revoked, expired or disabled."""
    found = resolve_token(session, token, now=now)
    return None if found is None else found[0]


def resolve_token(
    session: Session, token: str, *, now: datetime | None = None
) -> tuple[Account, int] | None:
    """The account behind a bearer token and the token's number, or None if unknown,
    revoked, expired or disabled."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    moment = now or datetime.now(UTC)
    row = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == digest(token))
    ).one_or_none()
    if row is None:
        return None
    api_token, user = row
    if (
        api_token.revoked_at is not None
        or user.disabled_at is not None
        or (api_token.expires_at is not None and moment >= api_token.expires_at)
    ):
        return None
    if api_token.last_used_at is None or moment - api_token.last_used_at >= _TOUCH_EVERY:
        api_token.last_used_at = moment
        session.flush()
    return Account.of(user), api_token.id


def revoke_token(session: Session, token_id: int, *, now: datetime | None = None) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise AccountError(f"no API token #{token_id}")
    row.revoked_at = row.revoked_at or now or datetime.now(UTC)
    session.flush()
    return row


def list_tokens(session: Session) -> list[tuple[ApiToken, str]]:
    rows = session.execute(
        select(ApiToken, User.username)
        .join(User, User.id == ApiToken.user_id)
        .order_by(ApiToken.id)
    )
    return [(t, name) for t, name in rows]
