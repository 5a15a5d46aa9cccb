"""Many rows in one go: COPY and array parameters on PostgreSQL, executemany on SQLite.

Measured on the ingest path (1,000-message batches, psycopg 3, SQLAlchemy 2.1): a
Core ``INSERT`` with a list of rows is sent as one multi-row ``VALUES`` statement
with ~20,000 named placeholders, and psycopg converts such a statement (too long for
its query cache) placeholder by placeholder in Python — most of a batch's time.
``COPY`` has no placeholders at all and is also the cheapest write for the server;
lookups and upserts pass each key column as one array parameter.

Values go through each column type's own bind processing (``UtcDateTime`` to naive
UTC, ``DecimalText`` to text), so what is stored is exactly what the ORM would store.
SQLite's ``executemany`` is already a C loop over one prepared statement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    any_,
    bindparam,
    func,
    insert,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def among(session: Session, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """``column IN values``: a single array parameter on PostgreSQL (see the module doc)."""
    if is_postgres(session):
        match: ColumnElement[bool] = column == any_(
            bindparam(None, list(values), type_=ARRAY(column.type))
        )
        return match
    return cast("ColumnElement[bool]", column.in_(list(values)))


def pairs_among(
    session: Session, first: Any, second: Any, pairs: Sequence[tuple[Any, Any]]
) -> ColumnElement[bool]:
    """``(first, second) IN pairs``, as two arrays zipped by ``unnest`` on PostgreSQL."""
    if is_postgres(session):
        zipped = select(
            func.unnest(bindparam(None, [p[0] for p in pairs], type_=ARRAY(first.type))),
            func.unnest(bindparam(None, [p[1] for p in pairs], type_=ARRAY(second.type))),
        )
        return tuple_(first, second).in_(zipped)
    return tuple_(first, second).in_(list(pairs))


def chunks(session: Session, items: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    """All at once where the filter is an array (PostgreSQL); else slices under SQLite's limit."""
    if is_postgres(session):
        if items:
            yield items
        return
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _processors(
    table: Table, columns: Sequence[str], dialect: Dialect
) -> list[Callable[[Any], Any] | None]:
    return [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns]


def _converted(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], table: Table, dialect: Dialect
) -> Iterator[tuple[Any, ...]]:
    processors = _processors(table, columns, dialect)
    for row in rows:
        yield tuple(
            value if p is None else p(value)
            for p, value in zip(processors, (row[c] for c in columns), strict=True)
        )


def _driver(session: Session) -> Any:
    """The psycopg connection under the session's current transaction."""
    return session.connection().connection.driver_connection


def insert_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT ``rows`` (all with the same keys) into ``table``; nothing returned."""
    if not rows:
        return
    if not is_postgres(session):
        session.execute(insert(table), list(rows))
        return
    columns = list(rows[0])
    dialect = session.get_bind().dialect
    names = ", ".join(dialect.identifier_preparer.quote(c) for c in columns)
    sql = f"COPY {dialect.identifier_preparer.format_table(table)} ({names}) FROM STDIN"
    with _sqlalchemy_errors(session, sql), _driver(session).cursor() as cur, cur.copy(sql) as copy:
        for values in _converted(rows, columns, table, dialect):
            copy.write_row(values)


@contextmanager
def _sqlalchemy_errors(session: Session, statement: str) -> Iterator[None]:
    """Raise the driver's errors as SQLAlchemy's, as a statement through SQLAlchemy would.

    Callers tell a transient failure (a unique-key race with another worker, the
    database going away) from a bug by SQLAlchemy's exception classes; a broken
    connection is invalidated so that the pool does not hand it out again.
    """
    import psycopg

    try:
        yield
    except psycopg.Error as exc:
        broken = bool(_driver(session).closed)
        if broken:
            session.connection().invalidate(exc)
        raise DBAPIError.instance(
            statement, None, exc, psycopg.Error, connection_invalidated=broken
        ) from exc


def next_ids(session: Session, table: Table, n: int) -> list[int]:
    """``n`` fresh values of ``table``'s id sequence (PostgreSQL), to insert rows with COPY."""
    rows = session.execute(
        text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
        {"t": table.name, "n": n},
    )
    return [int(r[0]) for r in rows]
