"""Migration 0610_manual_tickets goes down and up again; its tables stay append-only."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from server.ledger.db import MIGRATIONS, make_engine, migrate


def _alembic(url: str, revision: str, *, down: bool) -> None:
    engine = make_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)
    engine.dispose()


def test_manual_tickets_migration_down_and_up(ledger_url: str) -> None:
    engine = make_engine(ledger_url)
    migrate(engine)
    engine.dispose()
    _alembic(ledger_url, "0600_bank_documents", down=True)
    engine = make_engine(ledger_url)
    assert "manual_tickets" not in inspect(engine).get_table_names()
    engine.dispose()
    _alembic(ledger_url, "heads", down=False)
    engine = make_engine(ledger_url)
    assert {"manual_tickets", "manual_attachments"} <= set(inspect(engine).get_table_names())
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO manual_attachments (sha256, media_type, size, content, stored_by,"
                " stored_at) VALUES (:h, 'image/png', 1, :c, 'ops', '2026-03-01 00:00:00')"
            ),
            {"h": "a" * 64, "c": b"x"},
        )
    for sql in ("UPDATE manual_attachments SET size = 2", "DELETE FROM manual_attachments"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(sql))
    engine.dispose()
