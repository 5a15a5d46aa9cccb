"""The shipped login policy: an attacker's failures never keep the real user out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from server.people.accounts import (
    LoginPolicy,
    LoginRefused,
    LoginThrottled,
    Role,
    authenticate,
)
from tests.support.accounts import CHEAP, PASSWORD, add_user

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DEFAULTS = LoginPolicy(cost=CHEAP)


def test_failures_from_an_attackers_address_do_not_lock_out_the_real_user(
    sessions: sessionmaker[Session],
) -> None:
    add_user(sessions, "alice", Role.AUDITOR)
    at = T0
    for _ in range(30):  # an evening of guessing from one address, each after its wait
        with pytest.raises(LoginRefused) as refused:
            authenticate(sessions, "alice", "guess pw 1", remote_addr="203.0.113.66",
                         policy=DEFAULTS, now=at)  # fmt: skip
        if isinstance(refused.value, LoginThrottled):
            at += timedelta(seconds=refused.value.retry_after_s)
        at += timedelta(seconds=1)
    with pytest.raises(LoginThrottled):
        authenticate(sessions, "alice", PASSWORD, remote_addr="203.0.113.66",
                     policy=DEFAULTS, now=at)  # fmt: skip
    account = authenticate(
        sessions, "alice", PASSWORD, remote_addr="198.51.100.7", policy=DEFAULTS, now=at
    )
    assert account.username == "alice"
