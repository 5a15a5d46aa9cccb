"""The MRP table (месячный расчётный показатель, the monthly calculation index).

Contracts priced in MRP/t are paid ``tonnes × rate × MRP``, with the MRP in force on
the ticket's local date. The values are set by law each year (and have changed
mid-year before), so they are data the operator loads from a file — never constants
in code. Each row names the first month it applies to; a value applies until the
next row or the end of its year, whichever comes first, so a year nobody loaded
stops the computation (:class:`server.money.allocation.MissingRate`) instead of silently
reusing last year's value.

CSV columns: ``valid_from`` (``YYYY`` or ``YYYY-MM``; a month start), ``mrp_kzt``
(tenge, at most 2 decimals), ``note`` (optional: the law that set it).
"""

from __future__ import annotations

import bisect
import csv
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from sqlalchemy.orm import Session

from server.money import reference
from server.money.contracts import ImportProblems
from server.money.tabular import TabularError, open_csv

KIND: Final = "mrp"
_VALID_FROM: Final = re.compile(r"^(\d{4})(?:-(\d{2})(?:-01)?)?$")
_KZT: Final = re.compile(r"^[0-9]{1,7}(\.[0-9]{1,2})?$")


@dataclass(frozen=True, slots=True)
class MrpRow:
    valid_from: date
    mrp_kzt: Decimal
    note: str = ""


@dataclass(frozen=True, slots=True)
class MrpTable:
    """MRP values by the month they take effect; ``version`` is the ledger's version."""

    rows: tuple[MrpRow, ...]
    version: int | None = None

    def __post_init__(self) -> None:
        starts = [r.valid_from for r in self.rows]
        if starts != sorted(set(starts)):
            raise ValueError("MRP rows must have distinct, ascending valid_from months")

    def value_for(self, month: date) -> Decimal | None:
        """The MRP in force in ``month`` (any date in it), or None if none is loaded."""
        i = bisect.bisect_right([r.valid_from for r in self.rows], month)
        if not i or self.rows[i - 1].valid_from.year != month.year:
            return None
        return self.rows[i - 1].mrp_kzt

    def to_body(self) -> list[dict[str, str]]:
        return [
            {
                "valid_from": r.valid_from.isoformat(),
                "mrp_kzt": format(r.mrp_kzt, "f"),
                "note": r.note,
            }
            for r in self.rows
        ]

    @classmethod
    def from_body(cls, body: Any, version: int | None = None) -> MrpTable:
        rows = tuple(
            MrpRow(date.fromisoformat(r["valid_from"]), Decimal(r["mrp_kzt"]), r.get("note", ""))
            for r in body
        )
        return cls(rows, version)

    @property
    def cuts(self) -> tuple[date, ...]:
        return tuple(r.valid_from for r in self.rows)


def read_csv(path: Path) -> MrpTable:
    """Parse and check an MRP file; every problem as ``file:row:column: reason``."""
    problems: list[str] = []
    rows: list[MrpRow] = []
    seen: dict[date, int] = {}
    try:
        with open_csv(path) as reader:
            header = reader.fieldnames or []
            for col in ("valid_from", "mrp_kzt"):
                if col not in header:
                    problems.append(f"{path}:1:{col}: required column missing")
            for col in header:
                if col not in ("valid_from", "mrp_kzt", "note"):
                    problems.append(f"{path}:1:{col}: unknown column")
            if problems:
                raise ImportProblems(problems)
            for raw in reader:
                where = f"{path}:{reader.line_num}"
                start = (raw.get("valid_from") or "").strip()
                value = (raw.get("mrp_kzt") or "").strip().replace(" ", "")
                m = _VALID_FROM.fullmatch(start)
                valid_from = None
                if not m:
                    problems.append(f"{where}:valid_from: {start!r} is not YYYY or YYYY-MM")
                else:
                    month = int(m.group(2) or 1)
                    if not 1 <= month <= 12:
                        problems.append(f"{where}:valid_from: month {month} is not 1..12")
                    else:
                        valid_from = date(int(m.group(1)), month, 1)
                if not _KZT.fullmatch(value):
                    problems.append(
                        f"{where}:mrp_kzt: {value!r} is not tenge with at most 2 decimals"
                    )
                elif Decimal(value) <= 0:
                    problems.append(f"{where}:mrp_kzt: must be positive")
                if valid_from is not None and valid_from in seen:
                    problems.append(
                        f"{where}:valid_from: {valid_from:%Y-%m} repeats row {seen[valid_from]}"
                    )
                if valid_from is not None and _KZT.fullmatch(value) and Decimal(value) > 0:
                    seen[valid_from] = reader.line_num
                    rows.append(MrpRow(valid_from, Decimal(value), (raw.get("note") or "").strip()))
    except TabularError as exc:
        raise ImportProblems([str(exc)]) from None
    except OSError as exc:
        raise ImportProblems([f"{path}: cannot read ({exc.strerror})"]) from None
    except csv.Error as exc:
        raise ImportProblems([f"{path}: not valid CSV ({exc})"]) from None
    if not problems and not rows:
        problems.append(f"{path}: no MRP rows")
    if problems:
        raise ImportProblems(problems)
    return MrpTable(tuple(sorted(rows, key=lambda r: r.valid_from)))


def store(session: Session, table: MrpTable, *, source: str, actor: str) -> reference.Loaded:
    return reference.store(session, KIND, table.to_body(), source=source, actor=actor)


def load(session: Session, version: int | None = None) -> MrpTable | None:
    """A stored version (default: the latest), or None if no table was ever loaded."""
    if version is None:
        version = reference.latest_version(session, KIND)
        if version is None:
            return None
    return MrpTable.from_body(reference.body(session, KIND, version), version)
