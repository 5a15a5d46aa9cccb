"""Migration 0520_signed_config goes down and up again; tickets stay append-only."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from edge.protocol import Channel, encode, topic
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.messages import Inbound
from server.ledger.db import make_engine, migrate, session_factory
from tests.server.ledger.test_migrations import _alembic
from tests.support.builders import fake_device, register
from tests.support.web import T0

APPEND_ONLY = "append-only"


def test_signed_config_migration_down_and_up(ledger_url: str, tmp_path: Path) -> None:
    engine = make_engine(ledger_url)
    migrate(engine)
    sessions = session_factory(engine)
    dev = fake_device(tmp_path)
    register(sessions, dev)
    dev.journal.config_revision = 3
    weighing = dev.weigh("10")
    IngestHandler(sessions).handle_batch(
        [Inbound(topic(dev.device_id, Channel.WEIGHING), encode(weighing), T0)]
    )
    with engine.connect() as conn:
        assert conn.execute(text("SELECT config_revision FROM tickets")).scalar_one() == 3
    assert "device_config_revisions" in inspect(engine).get_table_names()
    engine.dispose()
    _alembic(ledger_url, "0500_four_eyes", down=True)
    engine = make_engine(ledger_url)
    assert "device_config_revisions" not in inspect(engine).get_table_names()
    assert "config_revision" not in {c["name"] for c in inspect(engine).get_columns("tickets")}
    with pytest.raises(DBAPIError, match=APPEND_ONLY), engine.begin() as conn:
        conn.execute(text("UPDATE tickets SET net_g = 1"))
    engine.dispose()
    _alembic(ledger_url, "heads", down=False)
    engine = make_engine(ledger_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM tickets")).scalar_one() == 1
        assert conn.execute(text("SELECT config_revision FROM tickets")).scalar_one() is None
    for sql in ("UPDATE tickets SET config_revision = 3", "DELETE FROM tickets"):
        with pytest.raises(DBAPIError, match=APPEND_ONLY), engine.begin() as conn:
            conn.execute(text(sql))
    engine.dispose()
