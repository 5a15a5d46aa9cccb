"""Run attack cases against a freshly started system and count what they achieved."""

from __future__ import annotations

import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import Progress

from tests.attack.cases import Case, all_cases, select
from tests.attack.harness import COUNTERS, Harness, running


@dataclass
class Result:
    tried: int
    counts: dict[str, int]
    findings: dict[str, list[str]]
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        figures = " ".join(f"{c}={self.counts[c]}" for c in COUNTERS)
        return f"attack tried={self.tried} {figures}"


def run_cases(harness: Harness, cases: list[Case], progress: bool = True) -> list[str]:
    errors: list[str] = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("attack", total=len(cases))
        for c in cases:
            bar.update(task, description=f"{c.family}: {c.name}"[:60])
            try:
                c.run(harness)
            except Exception as exc:  # a case that could not finish is reported, not fatal
                errors.append(f"{c.name}: {type(exc).__name__}: {exc}")
                traceback.print_exc(limit=2)
            harness.supervise(c.name)
            bar.advance(task)
    return errors


def attack(limit: int | None = None, workdir: Path | None = None, progress: bool = True) -> Result:
    cases = select(all_cases(), limit)
    with (
        tempfile.TemporaryDirectory(prefix="epr-attack-") as tmp,
        running(workdir or Path(tmp)) as harness,
    ):
        errors = run_cases(harness, cases, progress)
        counts = harness.measure()
        return Result(len(cases), counts, harness.findings, errors)
