"""Edit the append-only ledger the way an attacker with database rights could.

Tamper-evidence tests must change stored rows directly; the triggers that refuse
UPDATE/DELETE on tickets are switched off for one transaction, as a database owner
could, so the tests show that the *evidence* catches what the triggers cannot stop.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.orm import Session

_TABLES = ("tickets", "ticket_reversals")


@contextmanager
def bypassing_append_only(session: Session) -> Iterator[Session]:
    """Within the caller's transaction, let UPDATE/DELETE through on append-only tables."""
    if session.get_bind().dialect.name == "postgresql":
        # Row triggers do not fire for a replica session (needs superuser, as tests have).
        session.execute(text("SET LOCAL session_replication_role = replica"))
        yield session
        return
    for table in _TABLES:
        for action in ("update", "delete"):
            session.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{action}"))
    yield session
    for table in _TABLES:
        for action in ("UPDATE", "DELETE"):
            session.execute(
                text(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table}"
                    f" BEGIN SELECT RAISE(ABORT, '{table} is append-only:"
                    " record a reversing entry instead'); END"
                )
            )
