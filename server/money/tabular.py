"""Rows of a spreadsheet a person hands in: CSV or XLSX, as they come from Excel.

It owns reading such a file into named cells, whatever the locale that wrote it:

* XLSX (recognised by its ZIP signature, whatever the name): the first sheet; the
  row numbers are the sheet's own. Dates come back as ``datetime``, numbers as text
  that reads back exactly (``repr`` of a float), so checks see what the cell showed.
* CSV: encoding detected — UTF-8 with or without a BOM, else Windows-1251 (what Excel
  saves in Russian and Kazakh locales); delimiter detected from the header line —
  the one of ``,`` ``;`` tab that occurs most outside quotes (ties: ``,``).
* Header names are matched case- and space-insensitively against the caller's
  columns and their aliases (``{"ticket number": "ticket_no", ...}``); an unknown or
  repeated header, or a missing required column, is an error naming file, line 1 and
  the column.

Every problem is a line ``FILE:LINE:COLUMN: what is wrong, what is expected``, all
of them collected into one :class:`TableProblems`, so a person fixes a file once.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Final

DELIMITERS: Final = (",", ";", "\t")
MAX_BYTES: Final = 50 * 1024 * 1024
"""Larger than any export a person hands in: refused before it is read."""
MAX_ROWS: Final = 100_000
"""More rows than any month's weighbridge export: a larger file is refused, not read."""
_XLSX_MAGIC: Final = b"PK\x03\x04"


class TabularError(ValueError):
    """The file is not readable CSV text; the message names the file."""


class TableProblems(TabularError):
    """Everything wrong with a file, one ``FILE:LINE:COLUMN: reason`` per problem."""

    def __init__(self, problems: list[str]) -> None:
        # One problem reads as itself, so the message a person sees starts with the file.
        if len(problems) == 1:
            super().__init__(problems[0])
        else:
            super().__init__(f"{len(problems)} problem(s):\n" + "\n".join(problems))
        self.problems = problems


Cell = str | datetime


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    """The line (CSV) or row (XLSX) number a person sees in the file."""
    cells: dict[str, Cell]
    """Canonical column name -> the cell, stripped; blank cells are absent."""


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    kind: str
    """``csv`` or ``xlsx``."""
    columns: tuple[str, ...]
    """Canonical names of the columns present, in file order."""
    rows: tuple[Row, ...]
    encoding: str | None = None
    delimiter: str | None = None


def _key(header: str) -> str:
    return " ".join(header.replace("_", " ").replace("\ufeff", "").split()).casefold()


def decode(data: bytes, name: str) -> tuple[str, str]:
    """(text, encoding) of a CSV file's bytes: UTF-8 (BOM or not), else Windows-1251."""
    if b"\x00" in data:
        raise TableProblems([f"{name}: not a text file (it contains NUL bytes)"])
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise TableProblems([f"{name}: not UTF-8 text after its BOM ({exc.reason})"]) from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        # Not UTF-8: what Excel saves in Russian and Kazakh locales, tried next.
        return _cp1251(data, name)


def _cp1251(data: bytes, name: str) -> tuple[str, str]:
    try:
        return data.decode("cp1251"), "cp1251"
    except UnicodeDecodeError as exc:
        raise TableProblems(
            [f"{name}: neither UTF-8 nor Windows-1251 text ({exc.reason})"]
        ) from None


def sniff_delimiter(header_line: str) -> str:
    """The delimiter of ``,`` ``;`` tab that a header line holds most, outside quotes."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for ch in header_line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    return max(DELIMITERS, key=lambda d: (counts[d], d == ","))


def _header(
    name: str,
    raw: list[str],
    aliases: Mapping[str, str],
    required: Collection[str],
) -> tuple[list[str | None], list[str]]:
    """Canonical name per position (None: a blank header over blank cells) and problems."""
    problems: list[str] = []
    names: list[str | None] = []
    seen: set[str] = set()
    for cell in raw:
        text = cell.strip()
        if not text:
            names.append(None)
            continue
        canonical = aliases.get(_key(text))
        if canonical is None:
            problems.append(
                f"{name}:1:{text}: unknown column (expected one of"
                f" {', '.join(sorted(set(aliases.values())))})"
            )
        elif canonical in seen:
            problems.append(f"{name}:1:{text}: column {canonical} given twice")
            canonical = None
        else:
            seen.add(canonical)
        names.append(canonical)
    problems += [f"{name}:1:{c}: required column missing" for c in required if c not in seen]
    return names, problems


def _csv(data: bytes, name: str, aliases: Mapping[str, str], required: Collection[str]) -> Table:
    text, encoding = decode(data, name)
    first = text.split("\n", 1)[0]
    delimiter = sniff_delimiter(first)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, None)
        if header is None:
            raise TableProblems([f"{name}: empty file (expected a header line)"])
        names, problems = _header(name, header, aliases, required)
        if problems:
            raise TableProblems(problems)
        rows: list[Row] = []
        line = reader.line_num
        for values in reader:
            number, line = line + 1, reader.line_num
            if not any(v.strip() for v in values):
                continue
            if len(rows) >= MAX_ROWS:
                raise TableProblems([f"{name}:{number}: more than {MAX_ROWS} rows"])
            if len(values) > len(names) and any(v.strip() for v in values[len(names) :]):
                problems.append(
                    f"{name}:{number}: {len(values)} cells, the header names {len(names)}"
                    f" (is the delimiter {delimiter!r} right?)"
                )
                continue
            cells: dict[str, Cell] = {
                col: v.strip() for col, v in zip(names, values, strict=False) if col and v.strip()
            }
            rows.append(Row(number, cells))
    except csv.Error as exc:
        raise TableProblems([f"{name}:{reader.line_num}: not valid CSV ({exc})"]) from None
    if problems:
        raise TableProblems(problems)
    present = tuple(n for n in names if n)
    return Table(name, "csv", present, tuple(rows), encoding, delimiter)


def _xlsx_cell(value: object) -> Cell | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        # repr reads back as the same double: what the sheet shows, digits included.
        return format(Decimal(repr(value)), "f")
    text = str(value).strip()
    return text or None


def _xlsx(data: bytes, name: str, aliases: Mapping[str, str], required: Collection[str]) -> Table:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise TableProblems([f"{name}: not an XLSX workbook ({exc})"]) from None
    try:
        ws = wb.worksheets[0]
        it = ws.iter_rows(values_only=True)
        header_row = next(it, None)
        if header_row is None:
            raise TableProblems([f"{name}: the first sheet is empty"])
        raw = ["" if h is None else str(h) for h in header_row]
        names, problems = _header(name, raw, aliases, required)
        if problems:
            raise TableProblems(problems)
        rows: list[Row] = []
        for number, values in enumerate(it, start=2):
            cells: dict[str, Cell] = {}
            for col, value in zip(names, values, strict=False):
                cell = _xlsx_cell(value)
                if col and cell is not None:
                    cells[col] = cell
            if not cells:
                continue  # sheets end with blank rows
            if len(rows) >= MAX_ROWS:
                raise TableProblems([f"{name}:{number}: more than {MAX_ROWS} rows"])
            rows.append(Row(number, cells))
    finally:
        wb.close()
    return Table(name, "xlsx", tuple(n for n in names if n), tuple(rows))


def read_table(
    data: bytes,
    name: str,
    *,
    aliases: Mapping[str, str],
    required: Collection[str] = (),
) -> Table:
    """A CSV or XLSX file's rows. ``aliases`` maps header spellings (any case, spaces
    or underscores) to canonical column names; canonical names are accepted as they are."""
    keyed = {_key(a): c for a, c in aliases.items()} | {_key(c): c for c in aliases.values()}
    if data.startswith(_XLSX_MAGIC):
        return _xlsx(data, name, keyed, required)
    if name.lower().endswith((".xlsx", ".xlsm")):
        raise TableProblems([f"{name}: named .xlsx but not an XLSX workbook"])
    return _csv(data, name, keyed, required)


def read_path(path: Path, *, aliases: Mapping[str, str], required: Collection[str] = ()) -> Table:
    """:func:`read_table` of a file on disk; its name as given is the one errors show."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TableProblems([f"{path}: cannot read ({exc.strerror})"]) from None
    return read_table(data, str(path), aliases=aliases, required=required)


@dataclass(frozen=True, slots=True)
class CsvText:
    text: str
    encoding: str
    """``utf-8-sig`` (with a byte-order mark), ``utf-8`` or ``cp1251``."""
    delimiter: str


def read_text(path: Path) -> CsvText:
    """The decoded text of a CSV file and its detected delimiter."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise TabularError(f"{path}: {size} bytes, more than {MAX_BYTES} allowed")
        raw = path.read_bytes()
    except OSError as exc:
        raise TabularError(f"{path}: cannot read ({exc.strerror})") from None
    text, encoding = decode(raw, str(path))
    return CsvText(text, encoding, sniff_delimiter(text.split("\n", 1)[0]))


@contextmanager
def open_csv(path: Path) -> Iterator[csv.DictReader[str]]:
    """A ``DictReader`` over ``path`` with its encoding and delimiter detected."""
    found = read_text(path)
    with io.StringIO(found.text, newline="") as fh:
        yield csv.DictReader(fh, delimiter=found.delimiter)
