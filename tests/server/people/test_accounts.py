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
POLICY = LoginPolicy(
    max_failures=3,
    max_failures_per_addr=5,
    max_failures_per_account=12,
    window_s=600,
    max_delay_s=60,
    cost=CHEAP,
)


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


def _fail(
    sessions: sessionmaker[Session],
    name: str,
    addr: str,
    at: datetime,
    password: str = "wrong pw!",  # noqa: S107 - a wrong password on purpose
) -> None:
    with pytest.raises(LoginRefused) as exc:
        authenticate(sessions, name, password, remote_addr=addr, policy=POLICY, now=at)
    assert not isinstance(exc.value, LoginThrottled), exc.value


def _throttled(sessions: sessionmaker[Session], name: str, addr: str, at: datetime) -> int:
    """The wait asked of a sign-in with the right password, which is not even checked."""
    with pytest.raises(LoginThrottled) as exc:
        authenticate(sessions, name, PASSWORD, remote_addr=addr, policy=POLICY, now=at)
    return exc.value.retry_after_s


ATTACKER, USER = "203.0.113.66", "198.51.100.7"


def test_an_attacker_elsewhere_cannot_lock_the_real_user_out(
    sessions: sessionmaker[Session],
) -> None:
    add_user(sessions, "alice", Role.AUDITOR)
    for i in range(10):  # far past the pair's allowance of 3, each after its delay
        _fail(sessions, "alice", ATTACKER, T0 + timedelta(minutes=i))
    # The attacker waits; the real user, from its own address, signs in at once.
    assert _throttled(sessions, "alice", ATTACKER, T0 + timedelta(minutes=9, seconds=1)) > 0
    account = authenticate(
        sessions, "alice", PASSWORD, remote_addr=USER, policy=POLICY, now=T0 + timedelta(minutes=9)
    )
    assert account.username == "alice"
    # ...and that success does not wipe the attacker's count.
    assert _throttled(sessions, "alice", ATTACKER, T0 + timedelta(minutes=9, seconds=2)) > 0


def test_delays_grow_to_a_cap_and_a_success_resets_them(sessions: sessionmaker[Session]) -> None:
    add_user(sessions, "alice", Role.AUDITOR)
    at = T0
    for _ in range(3):  # the pair's free allowance
        _fail(sessions, "alice", USER, at)
    waits = []
    for _ in range(8):
        wait = _throttled(sessions, "alice", USER, at)
        waits.append(wait)
        at += timedelta(seconds=wait)
        _fail(sessions, "alice", USER, at)
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60]  # doubling, capped at max_delay_s
    at += timedelta(seconds=_throttled(sessions, "alice", USER, at))
    authenticate(sessions, "alice", PASSWORD, remote_addr=USER, policy=POLICY, now=at)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(LoginFailure)) == 0
    _fail(sessions, "alice", USER, at)  # counted from zero again: no wait
    authenticate(sessions, "alice", PASSWORD, remote_addr=USER, policy=POLICY, now=at)


def test_failures_are_forgotten_after_the_window(sessions: sessionmaker[Session]) -> None:
    add_user(sessions, "alice", Role.AUDITOR)
    for i in range(3):
        _fail(sessions, "alice", USER, T0 + timedelta(seconds=i))
    assert _throttled(sessions, "alice", USER, T0 + timedelta(seconds=2)) == 1
    later = T0 + timedelta(seconds=POLICY.window_s + 3)
    authenticate(sessions, "alice", PASSWORD, remote_addr=USER, policy=POLICY, now=later)


def test_one_address_spraying_names_is_delayed_and_no_one_else(
    sessions: sessionmaker[Session],
) -> None:
    add_user(sessions, "alice", Role.AUDITOR)
    for i in range(5):
        _fail(sessions, f"ghost{i}", ATTACKER, T0, password="whatever pw")
    assert _throttled(sessions, "alice", ATTACKER, T0) == 1
    authenticate(sessions, "alice", PASSWORD, remote_addr=USER, policy=POLICY, now=T0)


def test_a_distributed_guess_meets_the_account_ceiling(sessions: sessionmaker[Session]) -> None:
    """The documented trade-off: past the (much higher) per-account ceiling every
    address waits, the real user's too — delayed, never locked."""
    add_user(sessions, "alice", Role.AUDITOR)
    for i in range(POLICY.max_failures_per_account):
        _fail(sessions, "alice", f"192.0.2.{i + 1}", T0)
    assert _throttled(sessions, "alice", USER, T0) == 1
    authenticate(
        sessions, "alice", PASSWORD, remote_addr=USER, policy=POLICY, now=T0 + timedelta(seconds=1)
    )


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
