"""INSERT … ON CONFLICT DO UPDATE for the rows several ingest workers share.

Device state, container state and hourly rollups are touched by every worker that
receives a message of that device or container. Read-then-insert loses a race
(two workers insert the same new key: a unique violation, the whole batch retried)
and read-then-update loses increments. One upsert statement per table and batch,
with the merge written in SQL (the row lock serialises concurrent merges), has
neither problem. PostgreSQL and SQLite (3.24+) share the syntax.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

Excluded = Any
"""The ``excluded`` pseudo-row (the proposed values), as ``stmt.excluded``."""


def upsert(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    keys: Sequence[str],
    merge: Callable[[Excluded], Mapping[str, Any]] | None,
    where: Callable[[Excluded], ColumnElement[bool]] | None = None,
) -> None:
    """Insert ``rows`` (unique on ``keys``); on conflict set ``merge(excluded)`` (if ``where``).

    ``merge=None`` keeps an existing row as it is (ON CONFLICT DO NOTHING).

    Rows are written in key order so that concurrent workers lock shared rows in the
    same order and cannot deadlock.
    """
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    else:  # the ledger supports exactly these two
        raise ValueError(f"upsert: the ledger runs on PostgreSQL or SQLite, not {dialect}")
    ordered = sorted(rows, key=lambda r: tuple(r[k] for k in keys))
    columns = list(ordered[0])
    stmt = insert(table)
    if dialect == "postgresql":
        # One statement whatever the number of rows: each column travels as one array
        # parameter, zipped back into rows by unnest (bulk.py explains why).
        stmt = stmt.from_select(
            columns,
            select(
                *(
                    func.unnest(
                        bindparam(None, [r[c] for r in ordered], type_=ARRAY(table.c[c].type))
                    )
                    for c in columns
                )
            ),
        )
    excluded = stmt.excluded
    if merge is None:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
    else:
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys),
            set_=dict(merge(excluded)),
            where=where(excluded) if where is not None else None,
        )
    if dialect == "postgresql":
        session.execute(stmt)
    else:
        session.execute(stmt, ordered)
