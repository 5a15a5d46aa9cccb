"""Statements built from an allocation: the pure statement model, exact money.

It owns what a contractor's statement for one month says — its lines (one per contract
version, stage and month), the tonnes over a cap, the held tickets and the totals — with
its canonical JSON and SHA-256, and how each contractor's statement is built from an
:class:`~server.money.allocation.Allocation`. Each line's amount is the one rounding
step of :mod:`server.money.amounts`; totals are sums of rounded lines.

Body formats: format 2 (``"format": 2`` in the body) gives each line the tonnes that
rest on device evidence and on manual tickets (``device_tonnes``, ``manual_tonnes``).
Bodies stored before it have no ``format`` key and no split; they read back as
format 1 and hash as they were stored, and verification recomputes them in format 1.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from server.ledger.audit import canonical_json
from server.money.allocation import Allocation, Portion, Terms, TicketIn
from server.money.amounts import (
    GRAMS_PER_TONNE,
    ROUNDING_POLICY,
    line_amount,
    money_context,
    next_month,
    tonnes,
)
from server.money.mrp import MrpTable

FORMAT: Final = 2
"""The body format computed now (see the module docstring)."""


def _d(x: Decimal) -> str:
    return format(x, "f")


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One contract version, one stage, one month. ``tickets``: weighings allocated to
    the contract that month, whether their tonnes were paid or went over its cap."""

    contract_id: str
    version: int
    category: str
    stage: str
    tickets: int
    tonnes: Decimal
    rate: Decimal
    rate_unit: str
    mrp_kzt: Decimal | None
    rate_kzt_per_t: Decimal
    amount_kzt: Decimal
    manual_tonnes: Decimal | None = None
    """Of ``tonnes``, those on manual tickets; None in a format 1 body (not recorded)."""

    @property
    def device_tonnes(self) -> Decimal | None:
        """Of ``tonnes``, those weighed by devices (signed evidence)."""
        return None if self.manual_tonnes is None else self.tonnes - self.manual_tonnes

    def canonical(self, fmt: int = FORMAT) -> dict[str, Any]:
        out = {
            "contract_id": self.contract_id,
            "version": self.version,
            "category": self.category,
            "stage": self.stage,
            "tickets": self.tickets,
            "tonnes": _d(self.tonnes),
            "rate": _d(self.rate),
            "rate_unit": self.rate_unit,
            "mrp_kzt": None if self.mrp_kzt is None else _d(self.mrp_kzt),
            "rate_kzt_per_t": _d(self.rate_kzt_per_t),
            "amount_kzt": _d(self.amount_kzt),
        }
        if fmt >= 2:
            manual = self.manual_tonnes if self.manual_tonnes is not None else Decimal(0)
            out["device_tonnes"] = _d(self.tonnes - manual)
            out["manual_tonnes"] = _d(manual)
        return out


@dataclass(frozen=True, slots=True)
class UnpaidLine:
    """Tonnes allocated to a contract beyond its caps: recorded, shown, unpaid."""

    contract_id: str | None
    category: str
    stage: str
    reason: Portion
    tonnes: Decimal

    def canonical(self) -> dict[str, Any]:
        return {
            "contract_id": self.contract_id,
            "category": self.category,
            "stage": self.stage,
            "reason": self.reason.value,
            "tonnes": _d(self.tonnes),
        }


@dataclass(frozen=True, slots=True)
class HeldLine:
    device_id: str
    seq: int
    weighed_at: datetime
    site_id: str
    category: str
    tonnes: Decimal
    reasons: tuple[tuple[str, str], ...]
    stages: tuple[str, ...]

    @property
    def status(self) -> str:
        return "open" if any(s == "open" for _, s in self.reasons) else "rejected"

    def canonical(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "seq": self.seq,
            "weighed_at": self.weighed_at.astimezone(UTC).isoformat(),
            "site_id": self.site_id,
            "category": self.category,
            "tonnes": _d(self.tonnes),
            "reasons": [{"reason": r, "status": s} for r, s in self.reasons],
            "stages": list(self.stages),
        }


@dataclass(frozen=True, slots=True)
class Statement:
    contractor_bin: str
    contractor_name: str
    period: str  # YYYY-MM
    lines: tuple[StatementLine, ...]
    over_cap: tuple[UnpaidLine, ...]
    total_tonnes: Decimal
    total_kzt: Decimal
    held: tuple[HeldLine, ...] = ()
    rounding_policy: str = ROUNDING_POLICY
    inputs: dict[str, Any] = field(default_factory=dict)
    format: int = FORMAT
    """The body format (module docstring); 1 for bodies stored before the evidence split."""

    def canonical(self) -> dict[str, Any]:
        head: dict[str, Any] = {"format": self.format} if self.format >= 2 else {}
        return head | {
            "kind": "original",
            "contractor_bin": self.contractor_bin,
            "contractor_name": self.contractor_name,
            "period": self.period,
            "lines": [ln.canonical(self.format) for ln in self.lines],
            "over_cap": [u.canonical() for u in self.over_cap],
            "held": [h.canonical() for h in self.held],
            "total_tonnes": _d(self.total_tonnes),
            "total_kzt": _d(self.total_kzt),
            "rounding_policy": self.rounding_policy,
            "inputs": self.inputs,
        }

    def canonical_text(self) -> str:
        return canonical_json(self.canonical())

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.canonical_text().encode()).hexdigest()


def period_of(t: TicketIn) -> str:
    d = t.local_date
    return f"{d.year:04d}-{d.month:02d}"


def build_statements(
    alloc: Allocation,
    contracts: Sequence[Terms],
    periods: Iterable[str],
    *,
    mrp: MrpTable | None = None,
    inputs: Mapping[str, Any] | None = None,
    contractors: Collection[str] | None = None,
) -> list[Statement]:
    """Every contractor's statement for each period (contractors with a contract
    overlapping it), sorted by period then BIN."""
    by_key = {c.key: c for c in contracts}
    wanted = set(periods)
    lines_by: dict[tuple[str, str], list[tuple[Terms, str, list[int]]]] = defaultdict(list)
    for (stage, cid, version, month), acc in alloc.lines.items():
        if month in wanted and (acc[0] or acc[1]):
            terms = by_key[(cid, version)]
            lines_by[(terms.contractor_bin, month)].append((terms, stage, acc))
    held_by: dict[tuple[str, str], list[HeldLine]] = defaultdict(list)
    for h in alloc.held:
        month = period_of(h.ticket)
        if month not in wanted:
            continue
        for contractor_bin, stages in h.attribution:
            held_by[(contractor_bin, month)].append(
                HeldLine(
                    h.ticket.device_id,
                    h.ticket.seq,
                    h.ticket.weighed_at,
                    h.ticket.site_id,
                    h.ticket.category,
                    tonnes(h.ticket.net_g),
                    h.reasons,
                    stages,
                )
            )
    out: list[Statement] = []
    for period in sorted(wanted):
        first = date.fromisoformat(period + "-01")
        last = next_month(first) - timedelta(days=1)
        names: dict[str, str] = {}
        for c in sorted(contracts, key=lambda c: (c.contract_id, c.version)):
            if c.period_start <= last and c.period_end >= first:
                names.setdefault(c.contractor_bin, c.contractor_name)
        for contractor_bin in sorted(names):
            if contractors is not None and contractor_bin not in contractors:
                continue
            out.append(
                _statement(
                    contractor_bin,
                    names[contractor_bin],
                    period,
                    lines_by.get((contractor_bin, period), []),
                    held_by.get((contractor_bin, period), []),
                    alloc,
                    mrp,
                    dict(inputs or {}),
                )
            )
    return out


def _statement(
    contractor_bin: str,
    name: str,
    period: str,
    found: list[tuple[Terms, str, list[int]]],
    held: list[HeldLine],
    alloc: Allocation,
    mrp: MrpTable | None,
    inputs: dict[str, Any],
) -> Statement:
    month = date.fromisoformat(period + "-01")
    found.sort(key=lambda x: (x[0].contract_id, x[0].version, x[1]))
    million = Decimal(GRAMS_PER_TONNE)
    with money_context():
        lines = []
        over_lines = []
        for terms, stage, (paid_g, over_g, count, manual_g) in found:
            rate = alloc.rates.get((terms.contract_id, terms.version, period))
            if rate is None:
                rate = terms.rate_kzt_per_t(month, mrp)
            mrp_value = None
            if terms.rate_unit == "MRP/t" and mrp is not None:
                mrp_value = mrp.value_for(month)
            paid_t = Decimal(paid_g) / million
            lines.append(
                StatementLine(
                    contract_id=terms.contract_id,
                    version=terms.version,
                    category=terms.category,
                    stage=stage,
                    tickets=count,
                    tonnes=paid_t,
                    rate=terms.rate,
                    rate_unit=terms.rate_unit,
                    mrp_kzt=mrp_value,
                    rate_kzt_per_t=rate,
                    amount_kzt=line_amount(paid_t, rate),  # the one rounding step
                    manual_tonnes=Decimal(manual_g) / million,
                )
            )
            if over_g:
                over_lines.append(
                    UnpaidLine(
                        terms.contract_id,
                        terms.category,
                        stage,
                        Portion.OVER_CAP,
                        Decimal(over_g) / million,
                    )
                )
        held_lines = sorted(held, key=lambda h: (h.weighed_at, h.device_id, h.seq))
        total_kzt = sum((ln.amount_kzt for ln in lines), Decimal("0.00"))
        total_t = sum((ln.tonnes for ln in lines), Decimal(0))
    return Statement(
        contractor_bin=contractor_bin,
        contractor_name=name,
        period=period,
        lines=tuple(lines),
        over_cap=tuple(over_lines),
        total_tonnes=total_t,
        total_kzt=total_kzt,
        held=tuple(held_lines),
        inputs=inputs,
    )


def build_statement(
    contractor_bin: str,
    period: str,
    alloc: Allocation,
    contracts: Sequence[Terms],
    *,
    mrp: MrpTable | None = None,
    inputs: Mapping[str, Any] | None = None,
) -> Statement | None:
    """One contractor's statement for one period, or None if no contract of theirs
    overlaps it."""
    found = build_statements(
        alloc, contracts, [period], mrp=mrp, inputs=inputs, contractors={contractor_bin}
    )
    return found[0] if found else None
