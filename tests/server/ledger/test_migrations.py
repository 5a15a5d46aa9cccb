"""Migration 0500_four_eyes goes down and up again, keeping approved statements frozen."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import DBAPIError

from server.ledger.db import MIGRATIONS, make_engine, migrate

FROZEN = "an approved statement is frozen"


def _alembic(engine_url: str, revision: str, *, down: bool) -> None:
    engine = make_engine(engine_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)
    engine.dispose()


def _approved_statement(conn: Connection) -> None:
    conn.execute(
        text(
            "INSERT INTO statement_runs (id, inputs, inputs_sha256, computed_at)"
            " VALUES (1, '{}', 'x', '2026-04-01 00:00:00')"
        )
    )
    conn.execute(
        text(
            "INSERT INTO statements (id, run_id, contractor_bin, period, kind, status, body,"
            " sha256, total_kzt, computed_at, approved_at, approved_by)"
            " VALUES (1, 1, '120440012349', '2026-03', 'original', 'approved', '{}', 'x',"
            " '1.00', '2026-04-01 00:00:00', '2026-04-02 00:00:00', 'head')"
        )
    )


def test_four_eyes_migration_down_and_up(ledger_url: str) -> None:
    engine = make_engine(ledger_url)
    migrate(engine)
    columns = {c["name"] for c in inspect(engine).get_columns("statements")}
    assert {"computed_by", "computed_by_id", "approved_by_id", "paid_by_id"} <= columns
    engine.dispose()
    _alembic(ledger_url, "0400", down=True)
    engine = make_engine(ledger_url)
    assert "account_permissions" not in inspect(engine).get_table_names()
    assert "computed_by_id" not in {c["name"] for c in inspect(engine).get_columns("statements")}
    with engine.begin() as conn:
        _approved_statement(conn)
    for sql in ("UPDATE statements SET body = 'y'", "DELETE FROM statements"):
        with pytest.raises(DBAPIError, match=FROZEN), engine.begin() as conn:
            conn.execute(text(sql))
    engine.dispose()
    _alembic(ledger_url, "heads", down=False)
    engine = make_engine(ledger_url)
    for sql in (
        "UPDATE statements SET body = 'y'",
        "UPDATE statements SET approved_by_id = 1",
        "DELETE FROM statements",
    ):
        with pytest.raises(DBAPIError, match=FROZEN), engine.begin() as conn:
            conn.execute(text(sql))
    with engine.begin() as conn:  # marking it paid, once, is still allowed
        conn.execute(text("UPDATE statements SET status = 'paid', payment_ref = 'PP-1'"))
    engine.dispose()
