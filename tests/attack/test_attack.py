"""A reduced attack run (about 60 cases, one of each known weakness among them) as part
of the suite: all four counters must be 0. ``make attack`` runs every case."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.attack.run import attack


class AttackSucceeded(AssertionError):
    """Some attack achieved something (the counters say what)."""


@pytest.mark.timeout(600)
def test_reduced_attack_achieves_nothing(tmp_path: Path) -> None:
    result = attack(limit=60, workdir=tmp_path, progress=False)
    assert result.tried >= 50
    if any(result.counts.values()):
        raise AttackSucceeded(f"{result.line()}\n{result.findings}")
