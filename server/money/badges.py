"""Badge map: which contractor a badge (the RFID card shown at the scale) belongs to.

Without it, a ticket goes to whichever contract covers its category and site or region
(in contract order), which is ambiguous where two contractors collect the same
category in the same region. With it, a badge names the contractor for the listed
stages (default: collection): for those stages only that contractor's contracts are
candidates, and if that contractor holds contracts for the category but none covers
the ticket's site or region, the ticket is held (``site_outside_region``).

CSV columns: ``badge, contractor_bin, stages`` (``;``-separated, default
``collection``), ``valid_from``, ``valid_to`` (optional dates, inclusive).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final

from sqlalchemy.orm import Session

from server.identifiers import bin_problem
from server.money import reference
from server.money.contracts import STAGES, ImportProblems
from server.money.tabular import TabularError, open_csv

KIND: Final = "badges"
COLUMNS: Final = ("badge", "contractor_bin", "stages", "valid_from", "valid_to")


@dataclass(frozen=True, slots=True)
class BadgeEntry:
    badge: str
    contractor_bin: str
    stages: tuple[str, ...] = ("collection",)
    valid_from: date | None = None
    valid_to: date | None = None

    def valid_on(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_to is None or day <= self.valid_to
        )


@dataclass(frozen=True)
class BadgeMap:
    entries: tuple[BadgeEntry, ...] = ()
    version: int | None = None
    _by_badge: dict[str, list[BadgeEntry]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        index: dict[str, list[BadgeEntry]] = defaultdict(list)
        for e in self.entries:
            index[e.badge].append(e)
        self._by_badge.update(index)

    def lookup(self, badge: str | None, day: date) -> BadgeEntry | None:
        if badge is None:
            return None
        for e in self._by_badge.get(badge, ()):
            if e.valid_on(day):
                return e
        return None

    @property
    def cuts(self) -> tuple[date, ...]:
        """Dates where an attribution starts or ends: allocation buckets split there."""
        out: set[date] = set()
        for e in self.entries:
            if e.valid_from is not None:
                out.add(e.valid_from)
            if e.valid_to is not None:
                out.add(e.valid_to + timedelta(days=1))
        return tuple(sorted(out))

    def to_body(self) -> list[dict[str, Any]]:
        return [
            {
                "badge": e.badge,
                "contractor_bin": e.contractor_bin,
                "stages": list(e.stages),
                "valid_from": e.valid_from.isoformat() if e.valid_from else None,
                "valid_to": e.valid_to.isoformat() if e.valid_to else None,
            }
            for e in sorted(self.entries, key=lambda e: (e.badge, e.valid_from or date.min))
        ]

    @classmethod
    def from_body(cls, body: Any, version: int | None = None) -> BadgeMap:
        return cls(
            tuple(
                BadgeEntry(
                    r["badge"],
                    r["contractor_bin"],
                    tuple(r["stages"]),
                    date.fromisoformat(r["valid_from"]) if r["valid_from"] else None,
                    date.fromisoformat(r["valid_to"]) if r["valid_to"] else None,
                )
                for r in body
            ),
            version,
        )


def read_csv(path: Path) -> BadgeMap:
    problems: list[str] = []
    entries: list[BadgeEntry] = []
    try:
        with open_csv(path) as reader:
            header = reader.fieldnames or []
            problems += [
                f"{path}:1:{c}: required column missing"
                for c in ("badge", "contractor_bin")
                if c not in header
            ]
            problems += [f"{path}:1:{c}: unknown column" for c in header if c not in COLUMNS]
            if problems:
                raise ImportProblems(problems)
            for raw in reader:
                entry = _check(raw, f"{path}:{reader.line_num}", problems)
                if entry is not None:
                    entries.append(entry)
    except TabularError as exc:
        raise ImportProblems([str(exc)]) from None
    except OSError as exc:
        raise ImportProblems([f"{path}: cannot read ({exc.strerror})"]) from None
    except csv.Error as exc:
        raise ImportProblems([f"{path}: not valid CSV ({exc})"]) from None
    by_badge: dict[str, list[BadgeEntry]] = defaultdict(list)
    for e in entries:
        for other in by_badge[e.badge]:
            if _overlap(e, other):
                problems.append(f"{path}:badge: {e.badge} has overlapping validity periods")
        by_badge[e.badge].append(e)
    if problems:
        raise ImportProblems(problems)
    return BadgeMap(tuple(entries))


def _overlap(a: BadgeEntry, b: BadgeEntry) -> bool:
    a0, a1 = a.valid_from or date.min, a.valid_to or date.max
    b0, b1 = b.valid_from or date.min, b.valid_to or date.max
    return a0 <= b1 and b0 <= a1


def _check(raw: dict[str, str], where: str, problems: list[str]) -> BadgeEntry | None:
    before = len(problems)

    def get(col: str) -> str:
        return (raw.get(col) or "").strip()

    badge = get("badge")
    if not badge:
        problems.append(f"{where}:badge: missing")
    contractor = get("contractor_bin")
    if reason := bin_problem(contractor):
        problems.append(f"{where}:contractor_bin: {reason}")
    stages = tuple(sorted({s.strip() for s in get("stages").split(";") if s.strip()})) or (
        "collection",
    )
    for s in stages:
        if s not in STAGES:
            problems.append(f"{where}:stages: {s!r} is not one of {', '.join(STAGES)}")
    dates: dict[str, date | None] = {}
    for col in ("valid_from", "valid_to"):
        try:
            dates[col] = date.fromisoformat(get(col)) if get(col) else None
        except ValueError:
            problems.append(f"{where}:{col}: {get(col)!r} is not a date like 2026-01-31")
    lo, hi = dates.get("valid_from"), dates.get("valid_to")
    if lo and hi and hi < lo:
        problems.append(f"{where}:valid_to: is before valid_from")
    if len(problems) > before:
        return None
    return BadgeEntry(badge, contractor, stages, lo, hi)


def store(session: Session, badges: BadgeMap, *, source: str, actor: str) -> reference.Loaded:
    return reference.store(session, KIND, badges.to_body(), source=source, actor=actor)


def load(session: Session, version: int | None = None) -> BadgeMap:
    """A stored version (default: the latest); an empty map if none was ever loaded."""
    if version is None:
        version = reference.latest_version(session, KIND)
        if version is None:
            return BadgeMap()
    return BadgeMap.from_body(reference.body(session, KIND, version), version)
