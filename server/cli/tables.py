"""Listings on a terminal, in a pipe, or as JSON: one description of the columns, three
renderings.

* On a terminal: a rich table as wide as the terminal; amounts and other numbers never
  wrap (text columns fold instead), numbers grouped as the language writes them.
* Piped or redirected: plain tab-separated rows under a header line, numbers exact and
  ungrouped, for ``cut``, ``sort`` and spreadsheets.
* ``--json``: a list of objects with every value at full precision (Decimals as
  strings, times in ISO 8601 with their offset).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from server.web.i18n import Translator


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    """The field in each row (and in ``--json``)."""
    header: str
    """Message id of the column's title."""
    places: int | None = None
    """Decimals shown on a terminal for a number; None: not a number."""
    short: Callable[[Any], str] | None = None
    """How a terminal shows a long value (a hash: its start)."""


def json_value(value: object) -> object:
    """A value for JSON without losing precision."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    return value


def plain(value: object, t: Translator) -> str:
    """A cell for a pipe: exact numbers, times with their offset."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return t.moment(value)
    if isinstance(value, list | tuple):
        return ";".join(str(v) for v in value)
    return str(value).replace("\t", " ").replace("\n", " ")


def pretty(value: object, column: Column, t: Translator) -> str:
    """A cell for a terminal: grouped numbers, times with their offset."""
    if value is None:
        return "—"
    if column.short is not None:
        return column.short(value)
    if isinstance(value, Decimal | int) and column.places is not None:
        return t.number(value, column.places)
    if isinstance(value, datetime):
        return t.moment(value, seconds=False)
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def emit(
    t: Translator,
    columns: Sequence[Column],
    rows: Sequence[Mapping[str, object]],
    *,
    as_json: bool,
    title: str | None = None,
    empty: str | None = None,
    out: IO[str] | None = None,
) -> None:
    """Print ``rows`` as JSON, a terminal table or tab-separated lines (see the module)."""
    stream = out or sys.stdout
    if as_json:
        data = [{k: json_value(v) for k, v in row.items()} for row in rows]
        stream.write(json.dumps(data, ensure_ascii=False, indent=1) + "\n")
        return
    if not rows and empty is not None:
        stream.write(empty + "\n")
        return
    if not stream.isatty():
        stream.write("\t".join(t(c.header) for c in columns) + "\n")
        for row in rows:
            stream.write("\t".join(plain(row.get(c.key), t) for c in columns) + "\n")
        return
    table = Table(title=title, title_justify="left")
    for c in columns:
        if c.places is not None:
            table.add_column(t(c.header), justify="right", no_wrap=True)
        else:
            table.add_column(t(c.header), overflow="fold")
    for row in rows:
        table.add_row(*(pretty(row.get(c.key), c, t) for c in columns))
    Console(file=stream).print(table)


def short_hash(value: object) -> str:
    return f"{str(value)[:12]}…"
