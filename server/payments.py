"""Allocation of weighed tonnage to contracts, and statements: pure functions over Decimal.

The rules (``docs/payments.md`` has a worked example):

* Weights are integer grams; tonnes = grams / 1,000,000, exact.
* Each service stage is allocated on its own; one tonne is paid at most once per stage.
* Tickets are taken in weighed-at order (ties: device id, then seq), so the order in
  which they reached the server never changes the result.
* A ticket goes to the first matching contract (category, site or region, period;
  contracts ordered by period start, then id) with volume and budget left; a ticket
  that crosses a cap is split; what no contract can take is *over cap* (recorded,
  shown, unpaid) or *no contract*.
* The one rounding step: each statement line's amount, tonnes × rate, to 2 places
  (tiyn), half up. Totals are sums of rounded lines.

A ``decimal`` context with the ``FloatOperation`` trap is active throughout: a float
reaching the money path raises instead of silently rounding.
"""

from __future__ import annotations

import decimal
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final
from zoneinfo import ZoneInfo

GRAMS_PER_TONNE: Final = 1_000_000
TIYN: Final = Decimal("0.01")
ROUNDING_POLICY: Final = "line-half-up-2dp/v1"
#: Kazakhstan has one time zone (UTC+5) since March 2024; periods are local dates.
LOCAL_TZ: Final = ZoneInfo("Asia/Almaty")

MONEY_CONTEXT: Final = decimal.Context(
    prec=34,
    rounding=decimal.ROUND_HALF_UP,
    traps=[
        decimal.FloatOperation,
        decimal.InvalidOperation,
        decimal.DivisionByZero,
        decimal.Overflow,
    ],
)


@contextmanager
def money_context() -> Iterator[decimal.Context]:
    with decimal.localcontext(MONEY_CONTEXT) as ctx:
        yield ctx


class Portion(StrEnum):
    PAID = "paid"
    OVER_CAP = "over_cap"
    NO_CONTRACT = "no_contract"


@dataclass(frozen=True, slots=True)
class TicketIn:
    """The part of a ledger ticket the engine needs."""

    ticket_id: int
    device_id: str
    seq: int
    weighed_at: datetime
    site_id: str
    region: str
    category: str
    net_g: int

    @property
    def order_key(self) -> tuple[datetime, str, int]:
        return (self.weighed_at, self.device_id, self.seq)

    @property
    def local_date(self) -> date:
        return self.weighed_at.astimezone(LOCAL_TZ).date()


@dataclass(frozen=True, slots=True)
class Terms:
    """One contract version, with its rate already in KZT per tonne."""

    contract_id: str
    version: int
    contractor_bin: str
    contractor_name: str
    category: str
    stage: str
    regions: frozenset[str]
    site_ids: frozenset[str]
    period_start: date
    period_end: date
    cap_t: Decimal
    rate_kzt_per_t: Decimal
    budget_cap_kzt: Decimal | None = None

    def matches(self, t: TicketIn) -> bool:
        if t.category != self.category:
            return False
        if not self.period_start <= t.local_date <= self.period_end:
            return False
        if self.site_ids and t.site_id in self.site_ids:
            return True
        return t.region in self.regions

    @property
    def cap_g(self) -> int:
        with money_context():
            grams = self.cap_t * GRAMS_PER_TONNE
        if grams != grams.to_integral_value():
            raise ValueError(f"{self.contract_id}: cap {self.cap_t} t is finer than a gram")
        return int(grams)


@dataclass(frozen=True, slots=True)
class Share:
    """Some grams of one ticket, allocated (or not) to one contract for one stage."""

    ticket: TicketIn
    stage: str
    portion: Portion
    grams: int
    contract: Terms | None = None


def allocate(tickets: Iterable[TicketIn], contracts: Sequence[Terms]) -> list[Share]:
    """Allocate every ticket, stage by stage. Deterministic in its inputs, not their order."""
    ordered = sorted(tickets, key=lambda t: t.order_key)
    stages = sorted({c.stage for c in contracts})
    shares: list[Share] = []
    with money_context():
        for stage in stages:
            terms = sorted(
                (c for c in contracts if c.stage == stage),
                key=lambda c: (c.period_start, c.contract_id, c.version),
            )
            room_g = {id(c): c.cap_g for c in terms}
            budget = {id(c): c.budget_cap_kzt for c in terms}
            by_category: dict[str, list[Terms]] = defaultdict(list)
            for c in terms:
                by_category[c.category].append(c)
            for t in ordered:
                candidates = [c for c in by_category.get(t.category, ()) if c.matches(t)]
                left = t.net_g
                for c in candidates:
                    if left == 0:
                        break
                    remaining = budget[id(c)]
                    take = min(left, room_g[id(c)], _budget_grams(c.rate_kzt_per_t, remaining))
                    if take <= 0:
                        continue
                    room_g[id(c)] -= take
                    if remaining is not None:
                        budget[id(c)] = remaining - _amount(take, c.rate_kzt_per_t)
                    shares.append(Share(t, stage, Portion.PAID, take, c))
                    left -= take
                if left:
                    portion = Portion.OVER_CAP if candidates else Portion.NO_CONTRACT
                    over_to = candidates[-1] if candidates else None
                    shares.append(Share(t, stage, portion, left, over_to))
    return shares


def _amount(grams: int, rate: Decimal) -> Decimal:
    """Unrounded tenge for ``grams`` at ``rate`` KZT/t."""
    return Decimal(grams) * rate / GRAMS_PER_TONNE


_UNLIMITED: Final = 2**62


def _budget_grams(rate: Decimal, remaining: Decimal | None) -> int:
    """Grams the remaining budget still pays for (floor: never over budget)."""
    if remaining is None or (remaining > 0 and rate <= 0):
        return _UNLIMITED
    if remaining <= 0:
        return 0
    return int((remaining * GRAMS_PER_TONNE / rate).to_integral_value(decimal.ROUND_FLOOR))


def tonnes(grams: int) -> Decimal:
    with money_context():
        return Decimal(grams) / GRAMS_PER_TONNE


# --------------------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class StatementLine:
    contract_id: str
    version: int
    category: str
    stage: str
    tickets: int
    tonnes: Decimal
    rate_kzt_per_t: Decimal
    amount_kzt: Decimal


@dataclass(frozen=True, slots=True)
class UnpaidLine:
    contract_id: str | None
    category: str
    stage: str
    reason: Portion
    tickets: int
    tonnes: Decimal


@dataclass(frozen=True, slots=True)
class Statement:
    contractor_bin: str
    contractor_name: str
    period: str  # YYYY-MM
    lines: tuple[StatementLine, ...]
    over_cap: tuple[UnpaidLine, ...]
    total_tonnes: Decimal
    total_kzt: Decimal
    rounding_policy: str = ROUNDING_POLICY
    inputs: dict[str, Any] = field(default_factory=dict)

    def canonical(self) -> dict[str, Any]:
        def d(x: Decimal) -> str:
            return format(x, "f")

        return {
            "contractor_bin": self.contractor_bin,
            "contractor_name": self.contractor_name,
            "period": self.period,
            "lines": [
                {
                    "contract_id": ln.contract_id,
                    "version": ln.version,
                    "category": ln.category,
                    "stage": ln.stage,
                    "tickets": ln.tickets,
                    "tonnes": d(ln.tonnes),
                    "rate_kzt_per_t": d(ln.rate_kzt_per_t),
                    "amount_kzt": d(ln.amount_kzt),
                }
                for ln in self.lines
            ],
            "over_cap": [
                {
                    "contract_id": u.contract_id,
                    "category": u.category,
                    "stage": u.stage,
                    "reason": u.reason.value,
                    "tickets": u.tickets,
                    "tonnes": d(u.tonnes),
                }
                for u in self.over_cap
            ],
            "total_tonnes": d(self.total_tonnes),
            "total_kzt": d(self.total_kzt),
            "rounding_policy": self.rounding_policy,
            "inputs": self.inputs,
        }

    @property
    def hash(self) -> str:
        body = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(body.encode()).hexdigest()


def period_of(t: TicketIn) -> str:
    d = t.local_date
    return f"{d.year:04d}-{d.month:02d}"


def build_statement(
    contractor_bin: str,
    contractor_name: str,
    period: str,
    shares: Iterable[Share],
    inputs: dict[str, Any] | None = None,
) -> Statement:
    """The contractor's statement for ``period`` (YYYY-MM) from allocated shares."""
    paid: dict[tuple[str, int, str], list[Share]] = defaultdict(list)
    unpaid: dict[tuple[str | None, str, str, Portion], list[Share]] = defaultdict(list)
    for s in shares:
        if s.contract is None or s.contract.contractor_bin != contractor_bin:
            continue
        if period_of(s.ticket) != period:
            continue
        if s.portion is Portion.PAID:
            paid[(s.contract.contract_id, s.contract.version, s.stage)].append(s)
        else:
            key = (s.contract.contract_id, s.ticket.category, s.stage, s.portion)
            unpaid[key].append(s)
    with money_context():
        lines = []
        for (contract_id, version, stage), group in sorted(paid.items()):
            terms = group[0].contract
            assert terms is not None
            grams = sum(s.grams for s in group)
            t = Decimal(grams) / GRAMS_PER_TONNE
            amount = (t * terms.rate_kzt_per_t).quantize(TIYN)  # the one rounding step
            lines.append(
                StatementLine(
                    contract_id=contract_id,
                    version=version,
                    category=terms.category,
                    stage=stage,
                    tickets=len({s.ticket.ticket_id for s in group}),
                    tonnes=t,
                    rate_kzt_per_t=terms.rate_kzt_per_t,
                    amount_kzt=amount,
                )
            )
        over = [
            UnpaidLine(
                contract_id=cid,
                category=cat,
                stage=stage,
                reason=reason,
                tickets=len({s.ticket.ticket_id for s in group}),
                tonnes=Decimal(sum(s.grams for s in group)) / GRAMS_PER_TONNE,
            )
            for (cid, cat, stage, reason), group in sorted(
                unpaid.items(), key=lambda kv: (kv[0][0] or "", kv[0][1], kv[0][2], kv[0][3])
            )
        ]
        total_kzt = sum((ln.amount_kzt for ln in lines), Decimal("0.00"))
        total_t = sum((ln.tonnes for ln in lines), Decimal(0))
    return Statement(
        contractor_bin=contractor_bin,
        contractor_name=contractor_name,
        period=period,
        lines=tuple(lines),
        over_cap=tuple(over),
        total_tonnes=total_t,
        total_kzt=total_kzt,
        inputs=inputs or {},
    )
