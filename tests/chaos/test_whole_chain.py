"""The whole chain broken at once, reduced: four agents, 300 weighings, one fault of each
kind (``make chaos`` runs 20 agents, 5,000 weighings and 30 faults)."""

from __future__ import annotations

from pathlib import Path

from tests.chaos.whole_chain import FAULT_KINDS, Plan, run


def test_reduced_whole_chain_loses_duplicates_and_alters_nothing(tmp_path: Path) -> None:
    plan = Plan(devices=4, weighings=300, faults=6, workers=2, skewed=2, rate_hz=100.0)
    result = run(plan, tmp_path)
    assert result.notes == (), result.notes
    assert (result.weighings, result.faults) == (300, 6), result.line()
    assert set(result.fault_counts) == set(FAULT_KINDS)
    assert (result.lost, result.duplicates, result.mismatches) == (0, 0, 0), result.line()
