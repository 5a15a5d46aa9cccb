"""Reading a spreadsheet export as CSV, whatever the office program wrote.

Excel in Russian and Kazakh locales saves "CSV" with ``;`` between fields and in
Windows-1251; other tools write ``,`` or tabs, UTF-8 with or without a byte-order mark.
:func:`open_csv` detects both the encoding (UTF-8 with BOM, UTF-8, then cp1251) and the
delimiter (the one of ``,`` ``;`` tab found most often in the header line) and hands
back a ``csv.DictReader``, so each import checks columns as before.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

DELIMITERS: Final = (",", ";", "\t")
MAX_BYTES: Final = 50 * 1024 * 1024
_BOM: Final = b"\xef\xbb\xbf"


class TabularError(ValueError):
    """The file is not readable CSV text; the message names the file."""


@dataclass(frozen=True, slots=True)
class CsvText:
    text: str
    encoding: str
    """``utf-8-sig`` (with a byte-order mark), ``utf-8`` or ``cp1251``."""
    delimiter: str


def decode(raw: bytes, source: object) -> tuple[str, str]:
    """The text of ``raw`` and the encoding it was in."""
    if b"\x00" in raw:
        raise TabularError(f"{source}: not a text file (binary data; save it as CSV)")
    if raw.startswith(_BOM):
        try:
            return raw[len(_BOM) :].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise TabularError(f"{source}: not UTF-8 text after its BOM ({exc.reason})") from None
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1251"), "cp1251"
    except UnicodeDecodeError as exc:
        raise TabularError(
            f"{source}: neither UTF-8 nor Windows-1251 text ({exc.reason})"
        ) from None


def delimiter_of(header: str) -> str:
    """The delimiter the header line uses most (``,`` when it has none: one column)."""
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_text(path: Path) -> CsvText:
    """The decoded text of a CSV file and its detected delimiter."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise TabularError(f"{path}: {size} bytes, more than {MAX_BYTES} allowed")
        raw = path.read_bytes()
    except OSError as exc:
        raise TabularError(f"{path}: cannot read ({exc.strerror})") from None
    text, encoding = decode(raw, path)
    first = text.split("\n", 1)[0]
    return CsvText(text, encoding, delimiter_of(first))


@contextmanager
def open_csv(path: Path) -> Iterator[csv.DictReader[str]]:
    """A ``DictReader`` over ``path`` with its encoding and delimiter detected."""
    found = read_text(path)
    with io.StringIO(found.text, newline="") as fh:
        yield csv.DictReader(fh, delimiter=found.delimiter)
