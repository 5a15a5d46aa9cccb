"""Account tables: users and their roles, web logins, API tokens, failed logins.

Secrets are never stored: passwords as scrypt hashes (``server.people.passwords``), login
and API tokens as SHA-256 digests of random 32-byte values (a stolen database copy
cannot be replayed as a login).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from server.ledger.models import Base, BigId
from server.ledger.types import UtcDateTime


class User(Base):
    """A person who signs in: an operator, an auditor or a contractor's staff."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))
    contractor_bin: Mapped[str | None] = mapped_column(String(12), index=True, default=None)
    """Set for (and only for) contractor users: the one BIN whose data they see."""
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    password_changed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)


class LoginSession(Base):
    """A browser login; the cookie carries the token, the table only its digest."""

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    remote_addr: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(200), default="")


class ApiToken(Base):
    """A bearer token for the JSON API, made with ``epr-server token create``."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    """The first characters of the token, to recognise it in a list; not a secret."""
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)


class LoginFailure(Base):
    """One failed sign-in; recent rows throttle further attempts (kept in the database so
    that every server process sees the same count)."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    remote_addr: Mapped[str] = mapped_column(String(64), index=True)
    failed_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class AccountPermission(Base):
    """A permission granted to an operator account (``server.people.permissions``).

    Rows are never deleted: a revocation sets ``revoked_at``/``revoked_by``, and a
    later grant is a new row; both are also written to the audit log.
    """

    __tablename__ = "account_permissions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    permission: Mapped[str] = mapped_column(String(32))
    granted_at: Mapped[datetime] = mapped_column(UtcDateTime())
    granted_by: Mapped[str] = mapped_column(String(100))
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    revoked_by: Mapped[str | None] = mapped_column(String(100), default=None)
