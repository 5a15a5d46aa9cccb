"""What every ``epr-server`` command shares: the ledger and who is acting."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from server.config import Settings


def ledger_sessions(settings: Settings) -> sessionmaker[Session]:
    from server.ledger.db import make_engine, migrate, session_factory

    engine = make_engine(settings.database_url)
    migrate(engine)
    return session_factory(engine)


def default_actor() -> str:
    import getpass

    return f"cli:{getpass.getuser()}"
