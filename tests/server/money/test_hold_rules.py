"""Hold rules files: every problem named, floats refused, the shipped defaults read."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.money import hold_rules
from server.money.contracts import ImportProblems


def test_rules_files_are_checked(tmp_path: Path) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text('[weight]\ndefault = { min_kg = 0.5, max_kg = "10" }\n[colour]\nx = 1\n')
    with pytest.raises(ImportProblems) as err:
        hold_rules.read_rules(bad)
    text_ = "\n".join(err.value.problems)
    assert f"{bad}: weight.default.min_kg:" in text_
    assert "never as floats" in text_
    assert f"{bad}: colour: Extra inputs are not permitted" in text_
    broken = tmp_path / "broken.toml"
    broken.write_text("[scale\n")
    with pytest.raises(ImportProblems, match="not valid TOML"):
        hold_rules.read_rules(broken)
    assert hold_rules.read_rules().clock.tolerance_s == 300
