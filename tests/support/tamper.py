"""Edit the protected ledger the way an attacker with database rights could.

Tamper-evidence tests must change stored rows directly; the triggers that refuse
edits (append-only tickets, reversals and audit log; frozen approved statements) are
switched off for one transaction, as a database owner could, so the tests show that
the *evidence* catches what the triggers cannot stop.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.orm import Session


@contextmanager
def bypassing_append_only(session: Session) -> Iterator[Session]:
    """Within the caller's transaction, let UPDATE/DELETE through on protected tables."""
    if session.get_bind().dialect.name == "postgresql":
        # Row triggers do not fire for a replica session (needs superuser, as tests have).
        session.execute(text("SET LOCAL session_replication_role = replica"))
        yield session
        return
    triggers = session.execute(
        text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
    ).all()
    for name, _ in triggers:
        session.execute(text(f'DROP TRIGGER "{name}"'))
    yield session
    for _, sql in triggers:
        session.execute(text(sql))
