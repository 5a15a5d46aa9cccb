"""A reduced attack run (about 60 cases) as part of the suite: all four counters must be 0.

``PENDING_INTEGRITY`` marks the run as an expected failure while the integrity work
(acks naming seq and hash, signed configuration and device messages, sites bound to the
registry, uniform authorisation) is not merged; flip it to False after the merge. It is
strict: once everything holds, the flag must go.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.attack.run import attack

PENDING_INTEGRITY = True


class AttackSucceeded(AssertionError):
    """Some attack achieved something (the counters say what)."""


@pytest.mark.xfail(
    PENDING_INTEGRITY,
    reason="integrity work not merged yet: forged configs, alarms, status and acks succeed",
    raises=AttackSucceeded,
    strict=True,
)
@pytest.mark.timeout(600)
def test_reduced_attack_achieves_nothing(tmp_path: Path) -> None:
    result = attack(limit=60, workdir=tmp_path, progress=False)
    assert result.tried >= 50
    if any(result.counts.values()):
        raise AttackSucceeded(f"{result.line()}\n{result.findings}")
