"""Migration 0630: route plans and notification tables, down and up, as the models say."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from server.ledger.db import make_engine, migrate
from server.ledger.models import Base
from tests.server.ledger.test_migrations import _alembic

TABLES = {
    "route_plans",
    "notification_events",
    "notification_cursors",
    "notification_subscriptions",
    "notification_addresses",
    "notification_deliveries",
}


def test_0630_matches_the_models_and_goes_down_and_up(ledger_url: str) -> None:
    engine = make_engine(ledger_url)
    migrate(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    ours = [d for d in diff if any(t in repr(d) for t in TABLES)]
    assert ours == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT source, last_id FROM notification_cursors")).all() == [
            ("events", 0)
        ]
    engine.dispose()
    _alembic(ledger_url, "0620_places", down=True)
    engine = make_engine(ledger_url)
    assert not TABLES & set(inspect(engine).get_table_names())
    engine.dispose()
    _alembic(ledger_url, "heads", down=False)
    engine = make_engine(ledger_url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    engine.dispose()
