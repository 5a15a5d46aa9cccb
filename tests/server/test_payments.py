"""Allocation and statements, worked out by hand."""

from __future__ import annotations

import decimal
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from server.payments import (
    Portion,
    Terms,
    TicketIn,
    allocate,
    build_statement,
    money_context,
)

BIN = "120440012349"


def terms(**kw: object) -> Terms:
    base: dict[str, object] = {
        "contract_id": "C1",
        "version": 1,
        "contractor_bin": BIN,
        "contractor_name": "Eco Tyre",
        "category": "tyres",
        "stage": "collection",
        "regions": frozenset({"Almaty"}),
        "site_ids": frozenset(),
        "period_start": date(2026, 1, 1),
        "period_end": date(2026, 12, 31),
        "cap_t": Decimal(10),
        "rate_kzt_per_t": Decimal("53082.00"),
    }
    base.update(kw)
    return Terms(**base)  # type: ignore[arg-type]


def ticket(i: int, grams: int, *, day: int = 2, region: str = "Almaty", **kw: object) -> TicketIn:
    base: dict[str, object] = {
        "ticket_id": i,
        "device_id": "rp-1x",
        "seq": i,
        "weighed_at": datetime(2026, 3, day, 6, 0, tzinfo=UTC) + timedelta(minutes=i),
        "site_id": "s1",
        "region": region,
        "category": "tyres",
        "net_g": grams,
    }
    base.update(kw)
    return TicketIn(**base)  # type: ignore[arg-type]


def test_amount_is_tonnes_times_rate_rounded_once() -> None:
    # 1234.567 kg + 765.433 kg = 2 t exactly; 3 × 0.333333 t would round differently
    # per ticket than per line, so lines are rounded, tickets never.
    shares = allocate([ticket(1, 1_234_567), ticket(2, 765_433)], [terms()])
    st = build_statement(BIN, "Eco Tyre", "2026-03", shares)
    (line,) = st.lines
    assert line.tonnes == Decimal(2)
    assert line.amount_kzt == Decimal("106164.00")
    assert st.total_kzt == Decimal("106164.00")

    shares = allocate(
        [ticket(i, 333_333) for i in range(1, 4)], [terms(rate_kzt_per_t=Decimal("11717.36"))]
    )
    st = build_statement(BIN, "Eco Tyre", "2026-03", shares)
    # 0.999999 t × 11717.36 = 11717.348282... -> 11717.35
    assert st.lines[0].amount_kzt == Decimal("11717.35")


def test_cap_splits_the_crossing_ticket_and_the_rest_is_over_cap() -> None:
    tickets = [ticket(1, 6_000_000), ticket(2, 6_000_000), ticket(3, 1_000_000)]
    shares = allocate(tickets, [terms(cap_t=Decimal(10))])
    paid = [(s.ticket.ticket_id, s.grams) for s in shares if s.portion is Portion.PAID]
    over = [(s.ticket.ticket_id, s.grams) for s in shares if s.portion is Portion.OVER_CAP]
    assert paid == [(1, 6_000_000), (2, 4_000_000)]
    assert over == [(2, 2_000_000), (3, 1_000_000)]
    st = build_statement(BIN, "Eco Tyre", "2026-03", shares)
    assert st.total_tonnes == 10
    assert st.over_cap[0].tonnes == 3
    assert st.total_kzt == Decimal("530820.00")


def test_budget_cap_limits_grams_paid() -> None:
    c = terms(cap_t=Decimal(100), rate_kzt_per_t=Decimal(1000), budget_cap_kzt=Decimal("2500"))
    shares = allocate([ticket(1, 2_000_000), ticket(2, 2_000_000)], [c])
    st = build_statement(BIN, "Eco Tyre", "2026-03", shares)
    assert st.total_kzt == Decimal("2500.00")
    assert st.over_cap[0].tonnes == Decimal("1.5")


def test_arrival_order_never_changes_the_result() -> None:
    rng = random.Random(7)
    tickets = [ticket(i, rng.randint(1, 3_000_000), day=rng.randint(1, 28)) for i in range(1, 60)]
    contracts = [terms(cap_t=Decimal(25)), terms(contract_id="C2", cap_t=Decimal(30))]
    reference = build_statement(BIN, "Eco Tyre", "2026-03", allocate(tickets, contracts))
    for _ in range(5):
        rng.shuffle(tickets)
        again = build_statement(BIN, "Eco Tyre", "2026-03", allocate(tickets, contracts))
        assert again.hash == reference.hash


def test_region_category_and_period_must_match() -> None:
    tickets = [
        ticket(1, 1_000_000, region="Astana"),
        ticket(2, 1_000_000, category="batteries"),
        ticket(3, 1_000_000, weighed_at=datetime(2025, 12, 31, 12, tzinfo=UTC)),
        ticket(4, 1_000_000),
    ]
    shares = allocate(tickets, [terms()])
    paid = {s.ticket.ticket_id for s in shares if s.portion is Portion.PAID}
    assert paid == {4}
    assert {s.ticket.ticket_id for s in shares if s.portion is Portion.NO_CONTRACT} == {1, 2, 3}


def test_period_boundary_is_the_local_date() -> None:
    # 2026-03-31 20:00 UTC is already 1 April in Kazakhstan (UTC+5).
    late = ticket(1, 1_000_000, weighed_at=datetime(2026, 3, 31, 20, 0, tzinfo=UTC))
    shares = allocate([late], [terms()])
    assert build_statement(BIN, "Eco Tyre", "2026-03", shares).lines == ()
    assert build_statement(BIN, "Eco Tyre", "2026-04", shares).total_tonnes == 1


def test_a_tonne_is_paid_once_per_stage() -> None:
    collection = terms()
    transport = terms(contract_id="C-T", stage="transport", rate_kzt_per_t=Decimal(100))
    st = build_statement(
        BIN, "Eco Tyre", "2026-03", allocate([ticket(1, 2_000_000)], [collection, transport])
    )
    assert sorted((ln.stage, ln.tonnes) for ln in st.lines) == [
        ("collection", Decimal(2)),
        ("transport", Decimal(2)),
    ]
    assert st.total_kzt == Decimal("106364.00")


def test_floats_are_refused_on_the_money_path() -> None:
    with money_context():
        with pytest.raises(decimal.FloatOperation):
            Decimal(0.1)  # noqa: RUF032 - the float is the point
        with pytest.raises(decimal.FloatOperation):
            assert Decimal("1.5") < 2.0
