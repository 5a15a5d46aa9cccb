"""Accounts, logins, tokens and throttling, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from server.ledger.accounts import LoginFailure
from server.people.accounts import (
    AccountError,
    LoginPolicy,
    LoginRefused,
    LoginThrottled,
    OutOfScope,
    Role,
    Scope,
    authenticate,
    create_user,
    disable_user,
    find_user,
    set_password,
)
from server.people.logins import close_login, open_login, resolve_login
from server.people.passwords import PasswordError
from server.people.tokens import create_token, revoke_token, token_account
from tests.support.accounts import BIN_A, BIN_B, CHEAP, PASSWORD, add_user

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
POLICY = LoginPolicy(max_failures=3, max_failures_per_addr=5, window_s=600, cost=CHEAP)


def test_roles_and_scopes(sessions: sessionmaker[Session]) -> None:
    op = add_user(sessions, "Op.One", Role.OPERATOR)
    aud = add_user(sessions, "auditor1", Role.AUDITOR)
    con = add_user(sessions, "eco-tyre", Role.CONTRACTOR, BIN_A)
    assert op.username == "op.one"
    assert op.scope.is_everything
    assert aud.scope.is_everything
    assert con.scope == Scope(BIN_A)
    assert con.scope.allows(BIN_A)
    assert not con.scope.allows(BIN_B)
    assert con.scope.narrow(None) == BIN_A
    assert op.scope.narrow(BIN_B) == BIN_B
    with pytest.raises(OutOfScope):
        con.scope.narrow(BIN_B)
    with pytest.raises(OutOfScope):
        con.scope.require(BIN_B)


@pytest.mark.parametrize(
    ("username", "role", "bin_", "password", "error"),
    [
        ("x", "operator", None, PASSWORD, "user name"),
        ("bob", "boss", None, PASSWORD, "role"),
        ("bob", "contractor", None, PASSWORD, "needs the contractor's BIN"),
        ("bob", "contractor", "120440012348", PASSWORD, "check digit"),
        ("bob", "auditor", BIN_A, PASSWORD, "only contractor users"),
        ("bob", "auditor", None, "short", "at least 10"),
    ],
)
def test_bad_users_are_refused_with_the_reason(
    sessions: sessionmaker[Session],
    username: str,
    role: str,
    bin_: str | None,
    password: str,
    error: str,
) -> None:
    with sessions.begin() as session, pytest.raises((AccountError, PasswordError), match=error):
        create_user(session, username, password, role, contractor_bin=bin_, cost=CHEAP)


def test_duplicate_user(sessions: sessionmaker[Session]) -> None:
    add_user(sessions, "alice", Role.AUDITOR)
    with pytest.raises(AccountError, match="already exists"):
        add_user(sessions, "ALICE", Role.AUDITOR)


def test_authenticate_throttles_per_name_and_recovers(sessions: sessionmaker[Session]) -> None:
    add_user(sessions, "alice", Role.AUDITOR)
    for i in range(3):
        with pytest.raises(LoginRefused) as exc:
            authenticate(
                sessions,
                "alice",
                "wrong password",
                remote_addr="10.0.0.1",
                policy=POLICY,
                now=T0 + timedelta(seconds=i),
            )
        assert not isinstance(exc.value, LoginThrottled)
    # Locked now, even with the right password; the wait is what is left of the window.
    with pytest.raises(LoginThrottled) as throttled:
        authenticate(sessions, "alice", PASSWORD, policy=POLICY, now=T0 + timedelta(seconds=100))
    assert throttled.value.retry_after_s == 501
    account = authenticate(
        sessions, "Alice", PASSWORD, policy=POLICY, now=T0 + timedelta(seconds=601)
    )
    assert account.role is Role.AUDITOR
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(LoginFailure)) == 0


def test_authenticate_throttles_per_address(sessions: sessionmaker[Session]) -> None:
    add_user(sessions, "alice", Role.AUDITOR)
    for i in range(5):
        with pytest.raises(LoginRefused):
            authenticate(
                sessions, f"ghost{i}", "whatever pw", remote_addr="10.9.9.9", policy=POLICY, now=T0
            )
    with pytest.raises(LoginThrottled):
        authenticate(sessions, "alice", PASSWORD, remote_addr="10.9.9.9", policy=POLICY, now=T0)
    authenticate(sessions, "alice", PASSWORD, remote_addr="10.0.0.2", policy=POLICY, now=T0)


def test_login_rehashes_an_old_cost(sessions: sessionmaker[Session]) -> None:
    add_user(sessions, "alice", Role.AUDITOR)
    stronger = LoginPolicy(cost=type(CHEAP)(log2_n=11, r=8, p=1))
    authenticate(sessions, "alice", PASSWORD, policy=stronger)
    with sessions() as s:
        user = find_user(s, "alice")
        assert user is not None
        assert user.password_hash.startswith("scrypt$11$")


def test_logins_expire_idle_and_end(sessions: sessionmaker[Session]) -> None:
    account = add_user(sessions, "alice", Role.AUDITOR)
    with sessions.begin() as s:
        token = open_login(s, account, ttl_s=3600, now=T0)
    with sessions.begin() as s:
        login = resolve_login(s, token, idle_s=600, now=T0 + timedelta(seconds=500))
        assert login is not None
        assert login.account == account
        # Activity moves the idle clock on ...
        assert resolve_login(s, token, idle_s=600, now=T0 + timedelta(seconds=1000)) is not None
        # ... but not past the absolute expiry.
        assert resolve_login(s, token, idle_s=600, now=T0 + timedelta(seconds=3600)) is None
        assert resolve_login(s, token + "x", idle_s=600, now=T0) is None
    with sessions.begin() as s:
        token = open_login(s, account, ttl_s=3600, now=T0)
        assert resolve_login(s, token, idle_s=600, now=T0 + timedelta(seconds=601)) is None
        token = open_login(s, account, ttl_s=3600, now=T0)
        close_login(s, token, now=T0)
        assert resolve_login(s, token, idle_s=600, now=T0) is None


def test_password_change_and_disable_revoke_access(sessions: sessionmaker[Session]) -> None:
    account = add_user(sessions, "eco", Role.CONTRACTOR, BIN_A)
    with sessions.begin() as s:
        login = open_login(s, account, ttl_s=3600, now=T0)
        token, row = create_token(s, "eco", label="erp", now=T0)
    assert token.startswith("epr_")
    assert row.prefix == token[:12]
    with sessions.begin() as s:
        set_password(s, "eco", "another long password", cost=CHEAP, now=T0)
        assert resolve_login(s, login, idle_s=600, now=T0) is None
        assert token_account(s, token, now=T0) == account  # tokens survive a password change
    with pytest.raises(LoginRefused):
        authenticate(sessions, "eco", PASSWORD, policy=POLICY, now=T0)
    authenticate(sessions, "eco", "another long password", policy=POLICY, now=T0)
    with sessions.begin() as s:
        login = open_login(s, account, ttl_s=3600, now=T0)
        disable_user(s, "eco", now=T0)
    with sessions.begin() as s:
        assert resolve_login(s, login, idle_s=600, now=T0) is None
        assert token_account(s, token, now=T0) is None
        with pytest.raises(AccountError, match="disabled"):
            create_token(s, "eco")
    with pytest.raises(LoginRefused):
        authenticate(sessions, "eco", "another long password", policy=POLICY, now=T0)


def test_tokens_expire_and_revoke(sessions: sessionmaker[Session]) -> None:
    account = add_user(sessions, "auditor1", Role.AUDITOR)
    with sessions.begin() as s:
        token, row = create_token(s, "auditor1", expires_at=T0 + timedelta(days=1), now=T0)
        assert token_account(s, token, now=T0 + timedelta(hours=23)) == account
        assert token_account(s, token, now=T0 + timedelta(days=1)) is None
        assert token_account(s, "epr_unknown", now=T0) is None
        assert token_account(s, "not-a-token", now=T0) is None
        revoke_token(s, row.id, now=T0)
        assert token_account(s, token, now=T0) is None
        with pytest.raises(AccountError, match="expire before"):
            create_token(s, "auditor1", expires_at=T0, now=T0)
