"""Where each contract stands against its caps: paid, over cap, what is left.

Read from the statements themselves: one preview computation
(:func:`server.money.statements.compute`) from the first contract day through the
month asked for, every month's statement lines summed per contract. So the tonnes
and tenge here are the statements' own — the same allocation, the same one rounding
step per line — and the volume left is the cap minus what those lines paid, never a
second reckoning of the caps. A budget cap is checked by the allocation against the
same rounded line amounts, so the budget left is exact too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from server.money import previews
from server.money.allocation import MissingRate, Terms
from server.money.amounts import money_context
from server.money.contractors import months
from server.money.contracts import latest_versions
from server.money.inputs import terms_of
from server.money.statements import compute
from server.people.accounts import NotFound, Scope


def _d(x: Decimal | None) -> str | None:
    """Full precision, as the statements write decimals."""
    return None if x is None else format(x, "f")


@dataclass(frozen=True, slots=True)
class MonthFigure:
    """One month of one contract, from that month's statement lines."""

    period: str
    paid_t: Decimal
    over_cap_t: Decimal
    amount_kzt: Decimal
    paid_to_date_t: Decimal
    """Paid tonnes from the contract's first month through this one."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "paid_t": _d(self.paid_t),
            "over_cap_t": _d(self.over_cap_t),
            "amount_kzt": _d(self.amount_kzt),
            "paid_to_date_t": _d(self.paid_to_date_t),
        }


@dataclass(frozen=True, slots=True)
class Standing:
    """One contract (its current version) through ``through``."""

    terms: Terms
    through: str
    """The last month counted (YYYY-MM)."""
    tickets: int | None
    paid_t: Decimal | None
    paid_kzt: Decimal | None
    over_cap_t: Decimal | None
    """None, like every figure, when the statements cannot be computed (``problem``)."""
    months: tuple[MonthFigure, ...] = field(default=())
    problem: str | None = None
    """Why there are no figures: e.g. a rate in MRP/t for a month with no MRP loaded."""

    @property
    def remaining_t(self) -> Decimal | None:
        return None if self.paid_t is None else self.terms.cap_t - self.paid_t

    @property
    def remaining_kzt(self) -> Decimal | None:
        budget = self.terms.budget_cap_kzt
        if budget is None or self.paid_kzt is None:
            return None
        return budget - self.paid_kzt

    @property
    def cap_reached(self) -> bool:
        left_t, left_kzt = self.remaining_t, self.remaining_kzt
        return (left_t is not None and left_t <= 0) or (left_kzt is not None and left_kzt <= 0)

    def to_dict(self) -> dict[str, Any]:
        t = self.terms
        return {
            "contract_id": t.contract_id,
            "version": t.version,
            "contractor_bin": t.contractor_bin,
            "contractor_name": t.contractor_name,
            "category": t.category,
            "stage": t.stage,
            "period_start": t.period_start.isoformat(),
            "period_end": t.period_end.isoformat(),
            "through": self.through,
            "cap_t": _d(t.cap_t),
            "budget_cap_kzt": _d(t.budget_cap_kzt),
            "rate": _d(t.rate),
            "rate_unit": t.rate_unit,
            "tickets": self.tickets,
            "paid_t": _d(self.paid_t),
            "paid_kzt": _d(self.paid_kzt),
            "over_cap_t": _d(self.over_cap_t),
            "remaining_t": _d(self.remaining_t),
            "remaining_kzt": _d(self.remaining_kzt),
            "months": [m.to_dict() for m in self.months],
            "problem": self.problem,
        }


def _month(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def standings(
    session: Session, scope: Scope, *, today: date, contract_id: str | None = None
) -> list[Standing]:
    """Every contract ``scope`` may see (or the one named), through this month or its
    last month if it ended before, by contract id. Kept while the ledger is unchanged
    (:func:`server.money.previews.remember`)."""
    return previews.remember(
        session,
        ("standings", scope.contractor_bin, contract_id, today),
        lambda: _standings(session, scope, today=today, contract_id=contract_id),
    )


def _standings(
    session: Session, scope: Scope, *, today: date, contract_id: str | None
) -> list[Standing]:
    contracts = [terms_of(c) for c in latest_versions(session)]
    visible = [t for t in contracts if scope.allows(t.contractor_bin)]
    if contract_id is not None:
        visible = [t for t in visible if t.contract_id == contract_id]
        if not visible:
            raise NotFound(f"contract {contract_id}")
    if not visible:
        return []
    started = [t for t in contracts if t.period_start <= today]
    last = min(_month(today), max(_month(t.period_end) for t in contracts))
    figures: dict[str, dict[str, list[Any]]] = {t.contract_id: {} for t in visible}
    tickets: dict[str, int] = dict.fromkeys(figures, 0)
    if started:
        first = min(_month(t.period_start) for t in started)
        periods = months(first, last)
        owners = {t.contractor_bin for t in visible}
        try:
            found = compute(session, periods, contractors=owners).statements
        except MissingRate as exc:
            return [Standing(t, last, None, None, None, None, problem=str(exc)) for t in visible]
        with money_context():
            for st in found:
                for line in st.lines:
                    acc = figures.get(line.contract_id)
                    if acc is None:
                        continue
                    month = acc.setdefault(st.period, [Decimal(0), Decimal(0), Decimal("0.00")])
                    month[0] += line.tonnes
                    month[2] += line.amount_kzt
                    tickets[line.contract_id] += line.tickets
                for unpaid in st.over_cap:
                    acc = figures.get(unpaid.contract_id or "")
                    if acc is None:
                        continue
                    month = acc.setdefault(st.period, [Decimal(0), Decimal(0), Decimal("0.00")])
                    month[1] += unpaid.tonnes
    out = []
    with money_context():
        for t in sorted(visible, key=lambda t: t.contract_id):
            through = min(last, _month(t.period_end))
            running = Decimal(0)
            series = []
            own = figures[t.contract_id]
            for period in reversed(months(_month(t.period_start), through)):
                paid, over, amount = own.get(period, (Decimal(0), Decimal(0), Decimal("0.00")))
                running += paid
                series.append(MonthFigure(period, paid, over, amount, running))
            out.append(
                Standing(
                    terms=t,
                    through=through,
                    tickets=tickets[t.contract_id],
                    paid_t=running,
                    paid_kzt=sum((m.amount_kzt for m in series), Decimal("0.00")),
                    over_cap_t=sum((m.over_cap_t for m in series), Decimal(0)),
                    months=tuple(series),
                )
            )
    return out
