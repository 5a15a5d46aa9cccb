"""Reading spreadsheets people hand in: encodings, delimiters, headers, XLSX."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from openpyxl import Workbook

from server.money.tabular import (
    TableProblems,
    TabularError,
    open_csv,
    read_table,
    read_text,
    sniff_delimiter,
)

ALIASES = {"номер": "no", "вес": "kg"}


def test_tab_separated_utf8_bom_with_quoted_delimiters() -> None:
    data = '\ufeffNo\tKG\n"1;2,3"\t5\n\n7\t8\n'.encode()
    table = read_table(data, "t.tsv", aliases=ALIASES, required=("no",))
    assert (table.encoding, table.delimiter) == ("utf-8-sig", "\t")
    assert [(r.line, r.cells) for r in table.rows] == [
        (2, {"no": "1;2,3", "kg": "5"}),
        (4, {"no": "7", "kg": "8"}),
    ]


def test_cp1251_semicolon_and_aliases() -> None:
    table = read_table("Номер;Вес\n1;2,5\n".encode("cp1251"), "r.csv", aliases=ALIASES)
    assert (table.encoding, table.delimiter, table.columns) == ("cp1251", ";", ("no", "kg"))
    assert table.rows[0].cells == {"no": "1", "kg": "2,5"}


@pytest.mark.parametrize(
    ("data", "name", "problem"),
    [
        (b"MZ\x00\x00binary", "x.csv", "x.csv: not a text file (it contains NUL bytes)"),
        (b"no,kg\n1,2\n", "x.xlsx", "x.xlsx: named .xlsx but not an XLSX workbook"),
        (b"PK\x03\x04broken", "x.bin", "x.bin: not an XLSX workbook"),
        (b"", "e.csv", "e.csv: empty file (expected a header line)"),
        (b"no,no\n", "d.csv", "d.csv:1:no: column no given twice"),
        (b"kg\n1\n", "m.csv", "m.csv:1:no: required column missing"),
        (b"no,kg\n1,2,3\n", "w.csv", "w.csv:2: 3 cells, the header names 2"),
    ],
)
def test_bad_files_name_file_line_and_column(data: bytes, name: str, problem: str) -> None:
    with pytest.raises(TableProblems) as err:
        read_table(data, name, aliases=ALIASES, required=("no",))
    assert err.value.problems[0].startswith(problem), err.value.problems


def test_xlsx_first_sheet_with_sheet_row_numbers() -> None:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["Номер", "Вес"])
    ws.append([None, None])
    ws.append(["A1", 0.1])
    buf = io.BytesIO()
    wb.save(buf)
    table = read_table(buf.getvalue(), "w.xlsx", aliases=ALIASES)
    assert table.kind == "xlsx"
    assert [(r.line, r.cells) for r in table.rows] == [(3, {"no": "A1", "kg": "0.1"})]


def test_delimiter_sniffing() -> None:
    assert sniff_delimiter("a;b;c") == ";"
    assert sniff_delimiter('"a,b";c') == ";"
    assert sniff_delimiter("a\tb,c\td") == "\t"
    assert sniff_delimiter("single") == ","


# CSV opened as a DictReader (contracts, MRP, badges)

TEXT = "badge;contractor_bin;note\r\nB-1;120440012349;Приёмный пункт «Алматы»\r\n"


@pytest.mark.parametrize(
    ("delimiter", "encoding", "found"),
    [
        (",", "utf-8", "utf-8"),
        (";", "utf-8-sig", "utf-8-sig"),
        ("\t", "cp1251", "cp1251"),
        (";", "cp1251", "cp1251"),
    ],
)
def test_delimiter_and_encoding_detected(
    tmp_path: Path, delimiter: str, encoding: str, found: str
) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(TEXT.replace(";", delimiter).encode(encoding))
    text = read_text(path)
    assert (text.delimiter, text.encoding) == (delimiter, found)
    with open_csv(path) as reader:
        assert reader.fieldnames == ["badge", "contractor_bin", "note"]
        (row,) = list(reader)
    assert row["note"] == "Приёмный пункт «Алматы»"


def test_a_one_column_file_and_quoted_delimiters(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text('note\n"a; b, c"\n')
    with open_csv(path) as reader:
        assert [r["note"] for r in reader] == ["a; b, c"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"PK\x03\x04\x00\x00binary", "not a text file"),
        (b"\xef\xbb\xbfbad \xff\xfe", "not UTF-8 text after its BOM"),
        (b"a,b\n\x98\n", "neither UTF-8 nor Windows-1251 text"),
    ],
)
def test_unreadable_files_are_one_clear_error(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    with pytest.raises(TabularError, match=problem) as err:
        read_text(path)
    assert str(err.value).startswith(str(path))
    with pytest.raises(TabularError, match="cannot read"):
        read_text(tmp_path / "missing.csv")
