"""API tests: an app on the test's ledger (SQLite and PostgreSQL, like every ledger test).

``client`` is signed in as an operator (holding no permission) with a bearer token;
``client_as`` gives a client for any other account, with the permissions asked for, so
each route's role, permission and contractor scope is tested through the same
authentication a program would use.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from server.api.app import create_app
from server.config import Settings
from server.ledger.db import make_engine
from server.people.accounts import Role
from server.people.permissions import Permission, grant
from server.people.tokens import create_token
from tests.support.accounts import add_user
from tests.support.web import web

with warnings.catch_warnings():
    # Starlette asks for a newer httpx package; the client itself works the same.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient as TestClient

__all__ = ["TestClient", "client", "client_as", "web"]

ClientAs = Callable[..., TestClient]


@pytest.fixture
def client_as(ledger_url: str, sessions: sessionmaker[Session]) -> Iterator[ClientAs]:
    engine = make_engine(ledger_url)
    app = create_app(Settings(database_url=ledger_url), engine=engine)
    opened: list[TestClient] = []

    def make(
        username: str,
        role: Role,
        contractor_bin: str | None = None,
        permissions: Iterable[Permission] = (),
    ) -> TestClient:
        add_user(sessions, username, role, contractor_bin)
        with sessions.begin() as session:
            for permission in permissions:
                grant(session, username, permission, by="test")
            token, _ = create_token(session, username, label="test")
        c = TestClient(app, headers={"Authorization": f"Bearer {token}"})
        c.__enter__()
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.__exit__(None, None, None)
    engine.dispose()


@pytest.fixture
def client(client_as: ClientAs) -> TestClient:
    return client_as("ops", Role.OPERATOR)
