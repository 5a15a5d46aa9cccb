"""Tables fit the terminal without splitting an amount; a pipe gets plain rows."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from server.cli.tables import Column, emit
from server.web.i18n import Translator

COLUMNS = (
    Column("contract_id", "cli.col.contract"),
    Column("regions", "cli.col.regions"),
    Column("weighed_at", "cli.col.weighed_at"),
    Column("total_kzt", "cli.col.total_kzt", places=2),
)
ROWS = [
    {
        "contract_id": "EPR-T01-A-VERY-LONG-CONTRACT-IDENTIFIER",
        "regions": ["Almaty Region", "East Kazakhstan", "North Kazakhstan", "West Kazakhstan"],
        "weighed_at": datetime(2026, 3, 2, 4, 0, tzinfo=UTC),
        "total_kzt": Decimal("123456789012.345678"),
    }
]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("width", [40, 60, 80])
def test_a_narrow_terminal_folds_text_never_an_amount(
    width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    out = Terminal()
    emit(Translator("ru"), COLUMNS, ROWS, as_json=False, out=out)
    lines = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue()).splitlines()  # colours aside
    assert all(len(line) <= width for line in lines)
    assert any("123\xa0456\xa0789\xa0012,35" in line for line in lines)  # whole, on one line


def test_a_pipe_gets_tab_separated_exact_rows() -> None:
    out = io.StringIO()
    emit(Translator("en"), COLUMNS, ROWS, as_json=False, out=out)
    header, row = out.getvalue().splitlines()
    assert header == "contract\tregions\tweighed at\ttotal, KZT"
    assert row.split("\t") == [
        "EPR-T01-A-VERY-LONG-CONTRACT-IDENTIFIER",
        "Almaty Region;East Kazakhstan;North Kazakhstan;West Kazakhstan",
        "2026-03-02 09:00:00 UTC+05:00",
        "123456789012.345678",
    ]


def test_json_keeps_full_precision_and_tabs_in_text_do_not_break_rows() -> None:
    out = io.StringIO()
    emit(Translator("en"), COLUMNS, ROWS, as_json=True, out=out)
    (row,) = json.loads(out.getvalue())
    assert row["total_kzt"] == "123456789012.345678"
    assert row["weighed_at"] == "2026-03-02T04:00:00+00:00"
    piped = io.StringIO()
    emit(Translator("en"), COLUMNS, [{**ROWS[0], "contract_id": "a\tb\nc"}], as_json=False,
         out=piped)  # fmt: skip
    assert piped.getvalue().splitlines()[1].startswith("a b c\t")
