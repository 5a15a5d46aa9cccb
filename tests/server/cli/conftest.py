"""The command line on a ledger (SQLite, then PostgreSQL): ``run`` calls ``epr-server``
with an account's API token in ``EPR_TOKEN``, as a person at a console would."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from server import cli
from server.ledger.db import make_engine, migrate, session_factory
from server.people.accounts import Role
from server.people.permissions import Permission, grant
from server.people.tokens import create_token
from tests.support.accounts import add_user


def account(sessions: sessionmaker[Session], name: str, role: Role, *held: Permission,
            contractor_bin: str | None = None) -> str:  # fmt: skip
    """A user holding ``held``; returns an API token of it."""
    add_user(sessions, name, role, contractor_bin)
    with sessions.begin() as session:
        for permission in held:
            grant(session, name, permission, by="test")
        token, _ = create_token(session, name, label="cli")
    return token


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[tuple[str, sessionmaker[Session]]]:
    """The test's ledger (SQLite, then PostgreSQL) and its sessions."""
    url = ledger_url
    engine = make_engine(url)
    migrate(engine)
    yield url, session_factory(engine)
    engine.dispose()


@pytest.fixture
def run(
    ledger: tuple[str, sessionmaker[Session]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Run:
    """``epr-server ARGS`` on the ledger, with ``token`` in EPR_TOKEN (none: unset)."""
    monkeypatch.setenv("EPR_PASSWORD_SCRYPT_LOG2_N", "10")

    def run(*args: str, token: str | None = None) -> tuple[int, str, str]:
        if token is None:
            monkeypatch.delenv("EPR_TOKEN", raising=False)
        else:
            monkeypatch.setenv("EPR_TOKEN", token)
        code = cli.main(["--database-url", ledger[0], *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
