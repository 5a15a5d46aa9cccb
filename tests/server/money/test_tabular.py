"""CSV as office programs write it: ``,`` ``;`` or tab; UTF-8, UTF-8 with BOM or cp1251."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.money.tabular import TabularError, open_csv, read_text

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
