"""Append-only tables in the schema: the triggers every migration that adds one creates.

One place for the rule so each such table refuses the same things: on PostgreSQL an
UPDATE or DELETE of a row and a TRUNCATE (through ``ledger_refuse_change()``, which
migration 0100 creates and which names the table in its error), on SQLite an UPDATE or
DELETE (SQLite has no TRUNCATE).
"""

from __future__ import annotations

from collections.abc import Iterable

from alembic import op


def protect(tables: Iterable[str]) -> None:
    """Refuse every change to the rows of ``tables`` from now on."""
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in tables:
        if postgres:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}"
                " FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}"
                " FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
            )
            continue
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table}"
                f" BEGIN SELECT RAISE(ABORT, '{table} is append-only:"
                " record a reversing entry instead'); END"
            )


def release(tables: Iterable[str]) -> None:
    """Drop what :func:`protect` made (a downgrade)."""
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in tables:
        if postgres:
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
            continue
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER {table}_no_{action}")
