"""Allocation and statements, worked out by hand, as properties, and against an oracle."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.money.allocation import (
    SITE_OUTSIDE_REGION,
    HoldIn,
    HoldStatus,
    MemorySource,
    MissingRate,
    Portion,
    Terms,
    TicketIn,
    allocate,
    make_buckets,
)
from server.money.badges import BadgeEntry, BadgeMap
from server.money.lines import Statement, build_statement, build_statements
from server.money.mrp import MrpRow, MrpTable

BIN = "120440012349"
OTHER_BIN = "090540023459"
MRP = MrpTable(
    (
        MrpRow(date(2020, 1, 1), Decimal(2778)),
        MrpRow(date(2024, 1, 1), Decimal(3692)),
        MrpRow(date(2025, 1, 1), Decimal(3932)),
    )
)


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
        "rate": Decimal("53082.00"),
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


def statement(
    tickets: list[TicketIn],
    contracts: list[Terms],
    period: str = "2026-03",
    holds: Sequence[HoldIn] = (),
) -> Statement:
    alloc = allocate(MemorySource(tickets), contracts, holds=holds)
    found = build_statement(contracts[0].contractor_bin, period, alloc, contracts)
    assert found is not None
    return found


# --------------------------------------------------------------------------- by hand


def test_amount_is_tonnes_times_rate_rounded_once() -> None:
    # 1234.567 kg + 765.433 kg = 2 t exactly; lines are rounded, tickets never.
    st_ = statement([ticket(1, 1_234_567), ticket(2, 765_433)], [terms()])
    (line,) = st_.lines
    assert line.tonnes == Decimal(2)
    assert line.amount_kzt == Decimal("106164.00")
    assert st_.total_kzt == Decimal("106164.00")
    # 0.999999 t × 11717.36 = 11717.348282... -> 11717.35 (rounding each ticket's
    # 3906.116 share would give 3 × 3906.12 = 11718.36)
    st_ = statement([ticket(i, 333_333) for i in range(1, 4)], [terms(rate=Decimal("11717.36"))])
    assert st_.lines[0].amount_kzt == Decimal("11717.35")


def test_cap_splits_the_crossing_ticket_and_the_rest_is_over_cap() -> None:
    tickets = [ticket(1, 6_000_000), ticket(2, 6_000_000), ticket(3, 1_000_000)]
    alloc = allocate(MemorySource(tickets), [terms(cap_t=Decimal(10))], record_shares=True)
    assert alloc.shares is not None
    paid = [(s.ticket.ticket_id, s.grams) for s in alloc.shares if s.portion is Portion.PAID]
    over = [(s.ticket.ticket_id, s.grams) for s in alloc.shares if s.portion is Portion.OVER_CAP]
    assert paid == [(1, 6_000_000), (2, 4_000_000)]
    assert over == [(2, 2_000_000), (3, 1_000_000)]
    st_ = statement(tickets, [terms(cap_t=Decimal(10))])
    assert st_.total_tonnes == 10
    assert st_.over_cap[0].tonnes == 3
    # All three tickets were allocated to the contract, one of them partly over its cap.
    assert st_.lines[0].tickets == 3
    assert st_.total_kzt == Decimal("530820.00")


def test_budget_cap_limits_grams_paid() -> None:
    c = terms(cap_t=Decimal(100), rate=Decimal(1000), budget_cap_kzt=Decimal("2500"))
    st_ = statement([ticket(1, 2_000_000), ticket(2, 2_000_000)], [c])
    assert st_.total_kzt == Decimal("2500.00")
    assert st_.over_cap[0].tonnes == Decimal("1.5")


def test_budget_counts_rounded_line_amounts_across_months() -> None:
    # 0.333333 t/month at 1000.015 KZT/t = 333.338... -> 333.34 per month line.
    # Budget 1000.00: March and April lines spend 666.68; May may spend 333.32 more,
    # i.e. 333,315 g (333.3200 KZT), and never a tiyn over the budget.
    c = terms(cap_t=Decimal(100), rate=Decimal("1000.015"), budget_cap_kzt=Decimal("1000.00"))
    tickets = [
        ticket(m, 333_333, weighed_at=datetime(2026, m, 10, 6, tzinfo=UTC)) for m in (3, 4, 5)
    ]
    alloc = allocate(MemorySource(tickets), [c])
    months = [build_statement(BIN, f"2026-0{m}", alloc, [c]) for m in (3, 4, 5)]
    amounts = [s.total_kzt for s in months if s is not None]
    assert amounts == [Decimal("333.34"), Decimal("333.34"), Decimal("333.32")]
    assert sum(amounts) <= Decimal("1000.00")
    assert months[2] is not None
    assert months[2].lines[0].tonnes == Decimal("0.333315")


def test_arrival_order_never_changes_the_result() -> None:
    rng = random.Random(7)
    tickets = [ticket(i, rng.randint(1, 3_000_000), day=rng.randint(1, 28)) for i in range(1, 60)]
    contracts = [terms(cap_t=Decimal(25)), terms(contract_id="C2", cap_t=Decimal(30))]
    reference = statement(tickets, contracts).canonical_text()
    for _ in range(5):
        rng.shuffle(tickets)
        assert statement(tickets, contracts).canonical_text() == reference


def test_region_category_and_period_must_match() -> None:
    tickets = [
        ticket(1, 1_000_000, site_id="s2", region="Astana"),
        ticket(2, 1_000_000, category="batteries"),
        ticket(3, 1_000_000, weighed_at=datetime(2026, 1, 1, 12, tzinfo=UTC) - timedelta(days=1)),
        ticket(4, 1_000_000),
    ]
    alloc = allocate(MemorySource(tickets), [terms()], record_shares=True)
    assert alloc.shares is not None
    assert {s.ticket.ticket_id for s in alloc.shares if s.portion is Portion.PAID} == {4}
    assert {s.ticket.ticket_id for s in alloc.shares if s.portion is Portion.NO_CONTRACT} == {1, 2}
    # Weighed before any contract starts: outside the allocation altogether.
    assert 3 not in {s.ticket.ticket_id for s in alloc.shares}


def test_a_named_site_is_covered_outside_the_contracts_regions() -> None:
    c = terms(regions=frozenset({"Astana"}), site_ids=frozenset({"s1"}))
    assert statement([ticket(1, 1_000_000, region="Almaty")], [c]).total_tonnes == 1


def test_period_boundary_is_the_local_date() -> None:
    # 2026-03-31 20:00 UTC is already 1 April in Kazakhstan (UTC+5).
    late = ticket(1, 1_000_000, weighed_at=datetime(2026, 3, 31, 20, 0, tzinfo=UTC))
    alloc = allocate(MemorySource([late]), [terms()])
    march = build_statement(BIN, "2026-03", alloc, [terms()])
    april = build_statement(BIN, "2026-04", alloc, [terms()])
    assert march is not None
    assert march.lines == ()
    assert april is not None
    assert april.total_tonnes == 1


def test_a_tonne_is_paid_once_per_stage() -> None:
    collection = terms()
    transport = terms(contract_id="C-T", stage="transport", rate=Decimal(100))
    second = terms(contract_id="C9", rate=Decimal(1))  # same stage: never paid twice
    st_ = statement([ticket(1, 2_000_000)], [collection, transport, second])
    assert sorted((ln.contract_id, ln.stage, ln.tonnes) for ln in st_.lines) == [
        ("C-T", "transport", Decimal(2)),
        ("C1", "collection", Decimal(2)),
    ]
    assert st_.total_kzt == Decimal("106364.00")


def test_mrp_rate_uses_the_mrp_in_force_that_month() -> None:
    c = terms(
        rate=Decimal("13.50"),
        rate_unit="MRP/t",
        period_start=date(2024, 12, 1),
        period_end=date(2025, 1, 31),
        cap_t=Decimal(100),
    )
    dec = ticket(1, 1_000_000, weighed_at=datetime(2024, 12, 10, 6, tzinfo=UTC))
    jan = ticket(2, 1_000_000, weighed_at=datetime(2025, 1, 10, 6, tzinfo=UTC))
    alloc = allocate(MemorySource([dec, jan]), [c], mrp=MRP)
    s_dec = build_statement(BIN, "2024-12", alloc, [c], mrp=MRP)
    s_jan = build_statement(BIN, "2025-01", alloc, [c], mrp=MRP)
    assert s_dec is not None
    assert s_jan is not None
    assert s_dec.lines[0].rate_kzt_per_t == Decimal("49842.00")  # 13.50 × 3692
    assert s_dec.lines[0].mrp_kzt == Decimal(3692)
    assert s_jan.lines[0].rate_kzt_per_t == Decimal("53082.00")  # 13.50 × 3932
    assert s_jan.total_kzt == Decimal("53082.00")
    with pytest.raises(MissingRate, match="no MRP value is loaded for 2024-12"):
        allocate(MemorySource([dec]), [c], mrp=MrpTable((MrpRow(date(2025, 1, 1), Decimal(1)),)))


def test_held_tickets_are_left_out_and_shown_with_their_reasons() -> None:
    held = ticket(2, 3_000_000)
    tickets = [ticket(1, 1_000_000), held, ticket(3, 1_000_000)]
    holds = [HoldIn(held, "clock_unsynced", HoldStatus.OPEN)]
    st_ = statement(tickets, [terms()], holds=holds)
    assert st_.total_tonnes == 2
    (h,) = st_.held
    assert (h.device_id, h.seq, h.tonnes, h.status) == ("rp-1x", 2, Decimal(3), "open")
    assert h.reasons == (("clock_unsynced", "open"),)
    released = [HoldIn(held, "clock_unsynced", HoldStatus.RELEASED)]
    assert statement(tickets, [terms()], holds=released).total_tonnes == 5
    rejected = [HoldIn(held, "clock_unsynced", HoldStatus.REJECTED)]
    assert statement(tickets, [terms()], holds=rejected).held[0].status == "rejected"


def test_badge_names_the_contractor_and_a_site_outside_its_regions_is_held() -> None:
    eco = terms(cap_t=Decimal(100))
    other = terms(
        contract_id="C9",
        contractor_bin=OTHER_BIN,
        contractor_name="Other",
        cap_t=Decimal(100),
        regions=frozenset({"Almaty", "Astana"}),
    )
    badges = BadgeMap((BadgeEntry("B-ECO", BIN), BadgeEntry("B-OTH", OTHER_BIN)))
    tickets = [
        ticket(1, 1_000_000, badge="B-OTH"),  # Almaty, the other contractor's badge
        ticket(2, 2_000_000, badge="B-ECO"),
        ticket(3, 4_000_000, badge="B-ECO", site_id="s9", region="Astana"),  # outside eco's
        ticket(4, 8_000_000),  # no badge: first contract by order covering Almaty
    ]
    alloc = allocate(MemorySource(tickets), [eco, other], badges=badges)
    eco_st = build_statement(BIN, "2026-03", alloc, [eco, other])
    oth_st = build_statement(OTHER_BIN, "2026-03", alloc, [eco, other])
    assert eco_st is not None
    assert oth_st is not None
    assert eco_st.total_tonnes == 10
    assert oth_st.total_tonnes == 1
    (h,) = eco_st.held
    assert h.reasons == ((SITE_OUTSIDE_REGION, "open"),)
    assert h.seq == 3
    assert [t.seq for t in alloc.found_holds] == [3]
    # Released by an operator: paid to the badge's contractor, region waived.
    release = [HoldIn(tickets[2], SITE_OUTSIDE_REGION, HoldStatus.RELEASED)]
    alloc = allocate(MemorySource(tickets), [eco, other], badges=badges, holds=release)
    again = build_statement(BIN, "2026-03", alloc, [eco, other])
    assert again is not None
    assert again.total_tonnes == 14
    assert again.held == ()


def test_buckets_split_at_month_and_contract_boundaries() -> None:
    buckets = make_buckets(date(2026, 1, 1), date(2026, 3, 31), [date(2026, 2, 15)])
    assert [(b.first, b.last) for b in buckets] == [
        (date(2026, 1, 1), date(2026, 1, 31)),
        (date(2026, 2, 1), date(2026, 2, 14)),
        (date(2026, 2, 15), date(2026, 2, 28)),
        (date(2026, 3, 1), date(2026, 3, 31)),
    ]
    assert buckets[0].lo == datetime(2025, 12, 31, 19, tzinfo=UTC)


# --------------------------------------------------------------------------- properties

SITES = {"s1": "Almaty", "s2": "Astana", "s3": "Almaty"}
DEVICES = ("rp-a", "rp-b", "rp-c", "manual:s1")  # the last: manual tickets
START = datetime(2026, 2, 20, 19, tzinfo=UTC)


@st.composite
def tickets_st(draw: st.DrawFn, max_size: int = 30) -> list[TicketIn]:
    n = draw(st.integers(1, max_size))
    out = []
    seqs: dict[str, int] = defaultdict(int)
    for i in range(n):
        device = draw(st.sampled_from(DEVICES))
        seqs[device] += 1
        site = draw(st.sampled_from(sorted(SITES)))
        out.append(
            TicketIn(
                ticket_id=i + 1,
                device_id=device,
                seq=seqs[device],
                # a coarse grid makes equal weighed_at (the tie-break) common
                weighed_at=START + timedelta(hours=6 * draw(st.integers(0, 200))),
                site_id=site,
                region=SITES[site],
                category=draw(st.sampled_from(["tyres", "batteries"])),
                net_g=draw(st.integers(1, 4_000_000)),
                badge=draw(st.sampled_from([None, None, "B1", "B2"])),
                manual=device.startswith("manual:"),
            )
        )
    return out


@st.composite
def contracts_st(draw: st.DrawFn) -> list[Terms]:
    out = []
    for i in range(draw(st.integers(1, 4))):
        mrp = draw(st.booleans())
        budget = draw(st.one_of(st.none(), st.integers(1, 5_000_000)))
        start = draw(st.sampled_from([date(2026, 1, 1), date(2026, 3, 10)]))
        out.append(
            terms(
                contract_id=f"C{i}",
                contractor_bin=draw(st.sampled_from([BIN, OTHER_BIN])),
                category=draw(st.sampled_from(["tyres", "batteries"])),
                stage=draw(st.sampled_from(["collection", "transport"])),
                regions=frozenset(draw(st.sets(st.sampled_from(["Almaty", "Astana"]), max_size=2))),
                site_ids=frozenset(draw(st.sets(st.sampled_from(sorted(SITES)), max_size=1))),
                period_start=start,
                period_end=draw(st.sampled_from([date(2026, 3, 31), date(2026, 12, 31)])),
                cap_t=Decimal(draw(st.integers(1, 60_000_000))) / 1_000_000,
                rate=(
                    Decimal(draw(st.integers(100, 2000))) / 100
                    if mrp
                    else Decimal(draw(st.integers(100_00, 6_000_000))) / 100
                ),
                rate_unit="MRP/t" if mrp else "KZT/t",
                budget_cap_kzt=None if budget is None else Decimal(budget),
            )
        )
    return out


MRP26 = MrpTable((MrpRow(date(2026, 1, 1), Decimal(4325)),))
BADGES = BadgeMap((BadgeEntry("B1", BIN), BadgeEntry("B2", OTHER_BIN, ("collection", "transport"))))
PERIODS = ["2026-02", "2026-03", "2026-04", "2026-05", "2026-06", "2026-07"]
PROPS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(tickets: list[TicketIn], contracts: list[Terms], **kw: object) -> list[Statement]:
    alloc = allocate(MemorySource(tickets), contracts, mrp=MRP26, badges=BADGES, **kw)  # type: ignore[arg-type]
    return build_statements(alloc, contracts, PERIODS, mrp=MRP26)


def texts(statements: list[Statement]) -> list[str]:
    return [s.canonical_text() for s in statements]


@PROPS
@given(tickets_st(), contracts_st())
def test_lines_sum_to_the_total(tickets: list[TicketIn], contracts: list[Terms]) -> None:
    for s in run(tickets, contracts):
        assert sum((ln.amount_kzt for ln in s.lines), Decimal(0)) == s.total_kzt
        assert sum((ln.tonnes for ln in s.lines), Decimal(0)) == s.total_tonnes
        for ln in s.lines:
            assert ln.amount_kzt == (ln.tonnes * ln.rate_kzt_per_t).quantize(
                Decimal("0.01"), ROUND_HALF_UP
            )


@PROPS
@given(tickets_st(), contracts_st())
def test_no_contract_exceeds_its_caps(tickets: list[TicketIn], contracts: list[Terms]) -> None:
    paid_t: dict[str, Decimal] = defaultdict(Decimal)
    paid_kzt: dict[str, Decimal] = defaultdict(Decimal)
    for s in run(tickets, contracts):
        for ln in s.lines:
            paid_t[ln.contract_id] += ln.tonnes
            paid_kzt[ln.contract_id] += ln.amount_kzt
    for c in contracts:
        assert paid_t[c.contract_id] <= c.cap_t
        if c.budget_cap_kzt is not None:
            assert paid_kzt[c.contract_id] <= c.budget_cap_kzt


@PROPS
@given(tickets_st(), contracts_st(), st.randoms(use_true_random=False))
def test_any_arrival_order_gives_byte_identical_statements(
    tickets: list[TicketIn], contracts: list[Terms], rnd: random.Random
) -> None:
    reference = texts(run(tickets, contracts))
    shuffled = list(tickets)
    rnd.shuffle(shuffled)
    # Arrival order also decides the ledger ids: renumber them as they arrived.
    arrived = [replace(t, ticket_id=i + 1) for i, t in enumerate(shuffled)]
    assert texts(run(arrived, contracts)) == reference


@PROPS
@given(tickets_st(), contracts_st(), st.data())
def test_duplicates_change_nothing(
    tickets: list[TicketIn], contracts: list[Terms], data: st.DataObject
) -> None:
    copies = data.draw(st.lists(st.sampled_from(tickets), min_size=1, max_size=10))
    doubled = tickets + [replace(t, ticket_id=1000 + i) for i, t in enumerate(copies)]
    assert texts(run(doubled, contracts)) == texts(run(tickets, contracts))


@PROPS
@given(tickets_st(), contracts_st(), st.data())
def test_splitting_a_delivery_moves_the_amount_by_at_most_the_rounding_bound(
    tickets: list[TicketIn], contracts: list[Terms], data: st.DataObject
) -> None:
    target = data.draw(st.sampled_from(tickets))
    parts = data.draw(st.integers(2, 4))
    if target.net_g < parts:
        return
    cuts = sorted(
        data.draw(st.sets(st.integers(1, target.net_g - 1), min_size=parts - 1, max_size=parts - 1))
    )
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, target.net_g], strict=True)]

    # Room for the parts' seqs right after the original's, order otherwise unchanged.
    def renumber(t: TicketIn, seq: int, grams: int) -> TicketIn:
        return TicketIn(
            t.ticket_id,
            t.device_id,
            seq,
            t.weighed_at,
            t.site_id,
            t.region,
            t.category,
            grams,
            t.badge,
        )

    whole = [renumber(t, t.seq * 10, t.net_g) for t in tickets]
    split = [renumber(t, t.seq * 10, t.net_g) for t in tickets if t is not target]
    split += [renumber(target, target.seq * 10 + i, g) for i, g in enumerate(sizes)]
    before = run(whole, contracts)
    after = run(split, contracts)
    assert [(s.contractor_bin, s.period) for s in before] == [
        (s.contractor_bin, s.period) for s in after
    ]
    for a, b in zip(before, after, strict=True):
        # Each line is rounded once, so a line moves by at most one tiyn.
        bound = Decimal("0.01") * max(len(a.lines), len(b.lines))
        assert abs(a.total_kzt - b.total_kzt) <= bound
        assert a.total_tonnes == b.total_tonnes


@PROPS
@given(tickets_st(), contracts_st())
def test_group_shortcut_equals_ticket_by_ticket(
    tickets: list[TicketIn], contracts: list[Terms]
) -> None:
    assert texts(run(tickets, contracts)) == texts(run(tickets, contracts, ticket_level=True))


# --------------------------------------------------------------------------- oracle

SEED_LOTS = (
    # category, cap t, rate, unit, budget KZT, tonnes delivered a month, ticket kg
    ("tyres", 35_000, "13.50", "MRP/t", None, "3000", "20000.5"),
    ("used_oil", 40_000, "2.98", "MRP/t", None, "3100.25", "12345.678"),
    ("batteries", 20_000, "2.39", "MRP/t", None, "1800", "7500"),
    ("antifreeze", 7_000, "8150.75", "KZT/t", None, "650.5", "3333.333"),
    ("packaging_polymer", 130_000, "9.05", "MRP/t", "3000000000.00", "11000", "18000"),
)


def _seed_tickets() -> list[TicketIn]:
    """Each lot's monthly tonnage delivered in equal tickets (the month's remainder in a
    last smaller one), one site per lot, spread over working days of 2020."""
    out: list[TicketIn] = []
    for n, (category, *_, monthly, ticket_kg) in enumerate(SEED_LOTS):
        for month in range(1, 13):
            left = int(Decimal(monthly) * 1_000_000)
            size = int(Decimal(ticket_kg) * 1000)
            i = 0
            while left > 0:
                grams = min(size, left)
                at = datetime(2020, month, 1 + i % 27, 4, tzinfo=UTC) + timedelta(minutes=i)
                out.append(
                    TicketIn(
                        len(out) + 1,
                        f"rp-{n}",
                        len(out) + 1,
                        at,
                        f"site-{n}",
                        "Almaty",
                        category,
                        grams,
                    )
                )
                left -= grams
                i += 1
    return out


def _oracle(lot: tuple[str, int, str, str, str | None, str, str]) -> Decimal:
    """The lot's 2020 payment, month by month, without the engine: monthly tonnage is
    paid until the cap and the budget run out; each month's line is rounded once."""
    _, cap, rate, unit, budget, monthly, _ = lot
    rate_kzt = Decimal(rate) * 2778 if unit == "MRP/t" else Decimal(rate)
    cap_left = Decimal(cap)
    budget_left = Decimal(budget) if budget else None
    total = Decimal("0.00")
    for _month in range(12):
        paid = min(Decimal(monthly), cap_left)
        if budget_left is not None:
            # grams the remaining budget pays for, rounded down to the gram
            affordable = (budget_left / rate_kzt).quantize(Decimal("0.000001"), "ROUND_FLOOR")
            paid = min(paid, affordable)
        amount = (paid * rate_kzt).quantize(Decimal("0.01"), ROUND_HALF_UP)
        cap_left -= paid
        if budget_left is not None:
            budget_left -= amount
        total += amount
    return total


def test_seed_scale_lots_against_an_independent_oracle() -> None:
    contracts = [
        Terms(
            contract_id=f"EPR-2020-{n + 1}",
            version=1,
            contractor_bin=BIN,
            contractor_name="Seed contractor",
            category=category,
            stage="collection",
            regions=frozenset({"Almaty"}),
            site_ids=frozenset(),
            period_start=date(2020, 1, 1),
            period_end=date(2020, 12, 31),
            cap_t=Decimal(cap),
            rate=Decimal(rate),
            rate_unit=unit,
            budget_cap_kzt=Decimal(budget) if budget else None,
        )
        for n, (category, cap, rate, unit, budget, _, _) in enumerate(SEED_LOTS)
    ]
    tickets = _seed_tickets()
    alloc = allocate(MemorySource(tickets), contracts, mrp=MRP)
    periods = [f"2020-{m:02d}" for m in range(1, 13)]
    statements = build_statements(alloc, contracts, periods, mrp=MRP)
    by_contract: dict[str, Decimal] = defaultdict(Decimal)
    for s in statements:
        for ln in s.lines:
            by_contract[ln.contract_id] += ln.amount_kzt
    for n, lot in enumerate(SEED_LOTS):
        assert by_contract[f"EPR-2020-{n + 1}"] == _oracle(lot), lot[0]
    # Tyres by hand: 36,000 t delivered, cap 35,000 t, 13.50 MRP × 2,778 = 37,503 KZT/t.
    assert by_contract["EPR-2020-1"] == Decimal("1312605000.00")
    # Packaging: the 3 bn budget binds before the 130,000 t cap (9.05 × 2,778 = 25,140.90).
    assert by_contract["EPR-2020-5"] <= Decimal("3000000000.00")
    assert by_contract["EPR-2020-5"] > Decimal("2999999000.00")
    december = next(s for s in statements if s.period == "2020-12")
    over = {u.contract_id: u.tonnes for u in december.over_cap}
    assert over["EPR-2020-1"] == Decimal(1000)
