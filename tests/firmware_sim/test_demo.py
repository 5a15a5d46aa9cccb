"""`make demo` stays working: the whole fleet on the embedded broker, nothing lost."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from firmware_sim import demo


def test_demo_month_ends_with_a_clean_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo.main(["--workdir", str(tmp_path), "--timeout", "90"]) == 0
    out = capsys.readouterr().out
    match = re.search(
        r"^summary: weighings=(\d+) tonnes=([\d.]+) statements=(\d+) amount_kzt=([\d.]+)"
        r" lost=(\d+) duplicates=(\d+)$",
        out,
        re.MULTILINE,
    )
    assert match, out[-2000:]
    weighings, _, statements, amount, lost, duplicates = match.groups()
    assert int(weighings) == 208  # every scripted delivery in firmware_sim/data/demo_fleet.csv
    assert int(statements) == 4
    assert float(amount) > 0
    assert (lost, duplicates) == ("0", "0")
    assert "over cap, unpaid" in out
