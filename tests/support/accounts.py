"""Accounts for tests: the real code paths with a cheap scrypt cost (hashing is not the
subject of most tests; ``tests/server/people/test_passwords.py`` runs the production cost)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from server.people.accounts import Account, Role, create_user
from server.people.passwords import ScryptCost

CHEAP = ScryptCost(log2_n=10, r=8, p=1)
PASSWORD = "correct horse battery"
#: Two valid BINs (check digit included) for two contractors.
BIN_A = "120440012349"
BIN_B = "990140000384"


def add_user(
    sessions: sessionmaker[Session],
    username: str,
    role: Role,
    contractor_bin: str | None = None,
    password: str = PASSWORD,
) -> Account:
    with sessions.begin() as session:
        return create_user(
            session, username, password, role, contractor_bin=contractor_bin, cost=CHEAP
        )
