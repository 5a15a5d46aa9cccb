"""An app on the test's ledger (SQLite and PostgreSQL, like every ledger test)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from server.api.app import create_app
from server.config import Settings
from server.ledger.db import make_engine

with warnings.catch_warnings():
    # Starlette asks for a newer httpx package; the client itself works the same.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient as TestClient


@pytest.fixture
def client(ledger_url: str, sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    engine = make_engine(ledger_url)
    with TestClient(create_app(Settings(database_url=ledger_url), engine=engine)) as c:
        yield c
    engine.dispose()
