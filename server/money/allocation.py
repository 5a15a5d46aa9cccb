"""Allocation of weighed tonnage to contracts: the pure engine, exact integers.

It owns what allocation reads — tickets, contract versions (:class:`Terms`), recorded
holds, a :class:`TicketSource` that sums tickets per group and bucket — and what it
gives: an :class:`Allocation` of grams per contract version, stage and month, with the
tickets held and the tonnage no contract covers. Statements are built from it by
:mod:`server.money.lines`; grams, rates and the rounding step are
:mod:`server.money.amounts`.

The rules (``docs/payments.md`` explains them with a worked example):

* Each service stage is allocated on its own; one tonne is paid at most once per stage.
* Tickets are taken in weighed-at order (ties: device id, then seq), so the order in
  which they reached the server never changes the result. The same ``(device, seq)``
  counts once.
* A ticket goes to the first matching contract (category; site or region; period;
  contracts ordered by period start, then id) with volume and budget left; a ticket
  that crosses a cap is split; what no contract can take is *over cap* (recorded,
  shown, unpaid) or *no contract*. A badge mapped to a contractor restricts the
  candidates to that contractor's contracts for the badge's stages.
* Held tickets (see :mod:`server.money.holds`) are left out until released.
* A budget cap is checked against the rounded line amounts (the one rounding step,
  :mod:`server.money.amounts`), so the tenge paid under a contract never exceeds its
  budget.

Speed without losing exactness: tickets are summed per *group* — category, site and
badge — within *buckets* (local-date ranges inside one month, split wherever a
contract, badge or MRP period starts or ends). Within a bucket every ticket of a group
has the same candidate contracts, so a group whose candidates cannot run out inside the
bucket (the bucket's total demand on each is within its room) is allocated in one
step: ticket by ticket it would give the same result. Only groups that touch a contract
which may reach a cap inside the bucket are expanded to tickets and allocated one by
one in weighed-at order. Every cap is reached at most once, so few buckets expand.
Amounts are integers in 10⁻¹² KZT per tonne-gram units throughout allocation.
"""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final, Protocol

from server.money.amounts import (
    GRAMS_PER_TONNE,
    LOCAL_TZ,
    RATE_SCALE,
    UNITS_PER_TIYN,
    local_midnight,
    money_context,
    month_start,
    next_month,
)
from server.money.badges import BadgeMap
from server.money.mrp import MrpTable

ENGINE: Final = "bucketed-allocation/v2"


class Portion(StrEnum):
    PAID = "paid"
    OVER_CAP = "over_cap"
    NO_CONTRACT = "no_contract"


class HoldStatus(StrEnum):
    OPEN = "open"
    RELEASED = "released"
    REJECTED = "rejected"


#: The hold found by allocation itself (badge contractor's contracts miss the site).
SITE_OUTSIDE_REGION: Final = "site_outside_region"


class MissingRate(LookupError):
    """A contract in MRP/t has tickets in a month for which no MRP value is loaded."""


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
    badge: str | None = None
    manual: bool = False
    """Entered by hand (``server.ledger.manual``), not weighed by a device."""

    @property
    def order_key(self) -> tuple[datetime, str, int]:
        return (self.weighed_at, self.device_id, self.seq)

    @property
    def group(self) -> GroupKey:
        return (self.category, self.site_id, self.badge)

    @property
    def local_date(self) -> date:
        return self.weighed_at.astimezone(LOCAL_TZ).date()


#: Tickets are summed per (category, site_id, badge).
GroupKey = tuple[str, str, str | None]


@dataclass(frozen=True, slots=True)
class Terms:
    """One contract version."""

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
    rate: Decimal
    rate_unit: str = "KZT/t"
    budget_cap_kzt: Decimal | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.contract_id, self.version)

    @property
    def ref(self) -> str:
        return f"{self.contract_id}@v{self.version}"

    def covers(self, site_id: str, region: str) -> bool:
        return site_id in self.site_ids or region in self.regions

    def active(self, first: date, last: date) -> bool:
        return self.period_start <= first and last <= self.period_end

    @property
    def cap_g(self) -> int:
        with money_context():
            grams = self.cap_t * GRAMS_PER_TONNE
        if grams != grams.to_integral_value():
            raise ValueError(f"{self.contract_id}: cap {self.cap_t} t is finer than a gram")
        return int(grams)

    def rate_kzt_per_t(self, month: date, mrp: MrpTable | None) -> Decimal:
        """KZT per tonne in ``month``: the rate itself, or rate × the MRP in force."""
        if self.rate_unit == "KZT/t":
            return self.rate
        value = mrp.value_for(month) if mrp is not None else None
        if value is None:
            raise MissingRate(
                f"{self.ref}: rate is in MRP/t but no MRP value is loaded for"
                f" {month:%Y-%m} (epr-server mrp load FILE)"
            )
        with money_context():
            return self.rate * value


def _scaled(value: Decimal, scale: int, what: str) -> int:
    with money_context():
        units = value * scale
    if units != units.to_integral_value():
        raise ValueError(f"{what}: {value} has more decimals than the engine carries")
    return int(units)


# --------------------------------------------------------------------------- buckets


@dataclass(frozen=True, slots=True)
class Bucket:
    """Local dates ``first``..``last`` inside one month: [lo, hi) in UTC."""

    index: int
    first: date
    last: date
    lo: datetime
    hi: datetime

    @property
    def month(self) -> str:
        return f"{self.first.year:04d}-{self.first.month:02d}"


def make_buckets(first: date, last: date, cuts: Iterable[date] = ()) -> list[Bucket]:
    """Split ``first``..``last`` at every month start and every cut date."""
    points = {first, last + timedelta(days=1)}
    m = next_month(first)
    while m <= last:
        points.add(m)
        m = next_month(m)
    points.update(c for c in cuts if first < c <= last)
    ordered = sorted(points)
    return [
        Bucket(i, a, b - timedelta(days=1), local_midnight(a), local_midnight(b))
        for i, (a, b) in enumerate(itertools.pairwise(ordered))
    ]


# --------------------------------------------------------------------------- sources


class TicketSource(Protocol):
    """Where tickets come from: memory (tests) or the ledger (SQL sums, expanded on demand)."""

    def site_regions(self) -> Mapping[str, str]:
        """Region of every site tickets may name ("" for an unknown site)."""
        ...

    def group_sums(self, buckets: Sequence[Bucket]) -> list[dict[GroupKey, list[int]]]:
        """Per bucket: group -> [grams, tickets, grams of manual tickets] over every
        ticket in the bucket."""
        ...

    def tickets(self, bucket: Bucket, groups: Collection[GroupKey]) -> list[TicketIn]:
        """Every ticket of ``groups`` weighed inside ``bucket``."""
        ...


class MemorySource:
    """Tickets held in memory; a repeated ``(device_id, seq)`` counts once."""

    def __init__(self, tickets: Iterable[TicketIn], regions: Mapping[str, str] | None = None):
        unique: dict[tuple[str, int], TicketIn] = {}
        # Which copy of a repeated (device, seq) survives must not depend on input
        # order: keep the smallest by content.
        for t in sorted(tickets, key=lambda t: (t.device_id, t.seq, t.order_key, t.net_g)):
            unique.setdefault((t.device_id, t.seq), t)
        self._tickets = sorted(unique.values(), key=lambda t: t.order_key)
        self._regions = dict(regions or {})
        for t in self._tickets:
            self._regions.setdefault(t.site_id, t.region)

    def site_regions(self) -> Mapping[str, str]:
        return self._regions

    def group_sums(self, buckets: Sequence[Bucket]) -> list[dict[GroupKey, list[int]]]:
        out: list[dict[GroupKey, list[int]]] = [defaultdict(lambda: [0, 0, 0]) for _ in buckets]
        if not buckets:
            return out
        los = [b.lo for b in buckets]
        end = buckets[-1].hi
        for t in self._tickets:
            if t.weighed_at < los[0] or t.weighed_at >= end:
                continue
            acc = out[bisect.bisect_right(los, t.weighed_at) - 1][t.group]
            acc[0] += t.net_g
            acc[1] += 1
            if t.manual:
                acc[2] += t.net_g
        return out

    def tickets(self, bucket: Bucket, groups: Collection[GroupKey]) -> list[TicketIn]:
        return [
            t for t in self._tickets if bucket.lo <= t.weighed_at < bucket.hi and t.group in groups
        ]


# --------------------------------------------------------------------------- allocation


@dataclass(frozen=True, slots=True)
class HoldIn:
    """A recorded hold on a ticket, with its status at the time of computation."""

    ticket: TicketIn
    reason: str
    status: HoldStatus


@dataclass(frozen=True, slots=True)
class HeldEntry:
    """A ticket left out of payment, with why and whose statement shows it."""

    ticket: TicketIn
    reasons: tuple[tuple[str, str], ...]
    """(reason, status) pairs, sorted."""
    attribution: tuple[tuple[str, tuple[str, ...]], ...]
    """(contractor BIN, stages) for every contractor who would otherwise be paid."""

    @property
    def status(self) -> str:
        statuses = {s for _, s in self.reasons}
        return HoldStatus.OPEN if HoldStatus.OPEN in statuses else HoldStatus.REJECTED


@dataclass(frozen=True, slots=True)
class Share:
    """Some grams of one ticket, allocated (or not) to one contract for one stage.
    Recorded only on request (tests and audits): statements need only the sums."""

    ticket: TicketIn
    stage: str
    portion: Portion
    grams: int
    contract: Terms | None = None


#: (stage, contract_id, version, month) -> [paid grams, over-cap grams, tickets,
#: paid grams of manual tickets]
LineSums = dict[tuple[str, str, int, str], list[int]]


@dataclass
class Allocation:
    lines: LineSums = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0, 0]))
    """Per contract version, stage and month: grams paid, grams over cap, the tickets
    allocated to it (any of their grams, paid or over cap), and of the grams paid,
    those of manual tickets (the rest rest on device evidence)."""
    unattributed: dict[tuple[str, str, str], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0])
    )
    """(stage, category, month) -> [grams, tickets] that no contract covers."""
    held: list[HeldEntry] = field(default_factory=list)
    found_holds: list[TicketIn] = field(default_factory=list)
    """Tickets the allocation itself held (``site_outside_region``) with no recorded hold."""
    rates: dict[tuple[str, int, str], Decimal] = field(default_factory=dict)
    """(contract_id, version, month) -> KZT/t used."""
    shares: list[Share] | None = None
    expanded_buckets: int = 0
    expanded_tickets: int = 0


class _Contract:
    """Allocation state of one contract version (one stage)."""

    __slots__ = (
        "budget_left_u",
        "line",
        "month",
        "month_g",
        "order",
        "rate_u",
        "room_g",
        "spent_tiyn",
        "terms",
    )

    def __init__(self, terms: Terms, order: int = 0) -> None:
        self.terms = terms
        self.order = order
        """Position in contract order (period start, id, version) within its stage."""
        self.room_g = terms.cap_g
        self.spent_tiyn = 0
        self.month = ""
        self.month_g = 0
        self.rate_u = 0
        self.budget_left_u: int | None = None
        self.line: list[int] = [0, 0, 0, 0]
        """This month's [paid grams, over-cap grams, tickets, paid manual grams]: the
        statement line."""

    def enter_month(self, month: str, rate: Decimal, alloc: Allocation) -> None:
        if month == self.month:
            return
        key = (self.terms.stage, self.terms.contract_id, self.terms.version, month)
        self.line = alloc.lines[key]
        budget = self.terms.budget_cap_kzt
        if self.month and budget is not None:
            # Close the previous month's line exactly as the statement will round it.
            self.spent_tiyn += (self.month_g * self.rate_u + UNITS_PER_TIYN // 2) // UNITS_PER_TIYN
        self.month, self.month_g = month, 0
        self.rate_u = _scaled(rate, RATE_SCALE, f"{self.terms.ref} rate")
        if budget is not None:
            budget_tiyn = _scaled(budget, 100, f"{self.terms.ref} budget")
            self.budget_left_u = (budget_tiyn - self.spent_tiyn) * UNITS_PER_TIYN

    def room(self) -> int:
        if self.budget_left_u is None or self.rate_u <= 0:
            return self.room_g
        by_budget = (self.budget_left_u - self.month_g * self.rate_u) // self.rate_u
        return max(0, min(self.room_g, by_budget))

    def take(self, grams: int, manual: int = 0) -> None:
        """``grams`` paid, ``manual`` of them on manual tickets."""
        self.room_g -= grams
        self.month_g += grams
        self.line[0] += grams
        self.line[3] += manual


@dataclass(frozen=True, slots=True)
class _Attribution:
    contractor_bin: str
    stages: frozenset[str]


Chain = tuple["_Contract", ...]
"""A group's candidate contracts, in contract order."""


class _Candidates:
    """Candidate contracts per (stage, group) for the contracts active in a bucket.

    Buckets with the same active contracts and badge attributions share one *epoch*;
    a group's candidates are computed once per epoch (a year of monthly buckets
    usually has one).
    """

    def __init__(
        self,
        states: Mapping[str, Sequence[_Contract]],
        regions: Mapping[str, str],
        badges: BadgeMap,
    ) -> None:
        self.states = states
        self.regions = regions
        self.badges = badges
        self._badge_cuts = list(badges.cuts)
        self._epochs: dict[tuple[int, ...], dict[tuple[str, bool], dict[GroupKey, Any]]] = {}
        self._plans: dict[tuple[str, bool], dict[GroupKey, tuple[Chain, bool]]] = {}
        self._indexes: dict[
            tuple[int, ...], dict[tuple[str, str], tuple[dict[str, list[_Contract]], ...]]
        ] = {}
        self._index: dict[tuple[str, str], tuple[dict[str, list[_Contract]], ...]] = {}
        self._routes_by_epoch: dict[int, dict[GroupKey, tuple[tuple[Chain | str, ...], bool]]] = {}
        self._active: dict[str, dict[str, list[_Contract]]] = {}
        self._who: dict[str | None, _Attribution | None] = {}
        self._bucket: Bucket | None = None

    def enter(self, bucket: Bucket) -> None:
        active: dict[str, dict[str, list[_Contract]]] = {}
        ids: list[int] = [bisect.bisect_right(self._badge_cuts, bucket.first)]
        for stage, contracts in self.states.items():
            by_cat: dict[str, list[_Contract]] = defaultdict(list)
            for i, c in enumerate(contracts):
                if c.terms.active(bucket.first, bucket.last):
                    by_cat[c.terms.category].append(c)
                    ids.append(i)
            active[stage] = by_cat
            ids.append(-1)
        self._active = active
        epoch = tuple(ids)
        if epoch not in self._epochs:
            self._epochs[epoch] = {}
            # Who covers what, so a group's candidates are a lookup, not a scan.
            index: dict[tuple[str, str], tuple[dict[str, list[_Contract]], ...]] = {}
            for stage, by_cat in active.items():
                for category, pool in by_cat.items():
                    by_region: dict[str, list[_Contract]] = defaultdict(list)
                    by_site: dict[str, list[_Contract]] = defaultdict(list)
                    for c in pool:
                        for r in c.terms.regions:
                            by_region[r].append(c)
                        for site in c.terms.site_ids:
                            by_site[site].append(c)
                    index[(stage, category)] = (by_region, by_site)
            self._indexes[epoch] = index
        self._plans = self._epochs[epoch]
        self._index = self._indexes[epoch]
        self._who = {None: None}
        self._bucket = bucket

    def attribution(self, badge: str | None) -> _Attribution | None:
        if badge in self._who:
            return self._who[badge]
        assert self._bucket is not None
        entry = self.badges.lookup(badge, self._bucket.first)
        found = (
            None if entry is None else _Attribution(entry.contractor_bin, frozenset(entry.stages))
        )
        self._who[badge] = found
        return found

    def routes(self, stages: Sequence[str]) -> dict[GroupKey, tuple[tuple[Chain | str, ...], bool]]:
        """group -> (chain per stage, or its category where no contract covers it;
        whether any stage holds it for its badge) for this epoch; filled by ``route``."""
        return self._routes_by_epoch.setdefault(id(self._plans), {})

    def route(self, key: GroupKey, stages: Sequence[str]) -> tuple[tuple[Chain | str, ...], bool]:
        chains: list[Chain | str] = []
        held = False
        for stage in stages:
            chain, violation = self.get(stage, key)
            chains.append(chain or key[0])
            held = held or violation
        found = (tuple(chains), held)
        self.routes(stages)[key] = found
        return found

    def plan(self, stage: str, waived: bool = False) -> dict[GroupKey, tuple[Chain, bool]]:
        """group -> (candidates, region violation) for this epoch; filled by ``get``."""
        return self._plans.setdefault((stage, waived), {})

    def get(self, stage: str, key: GroupKey, waived: bool = False) -> tuple[Chain, bool]:
        """(candidates in order, region violation) for a group in the current bucket."""
        plan = self.plan(stage, waived)
        hit = plan.get(key)
        if hit is not None:
            return hit
        category, site_id, badge = key
        attribution = self.attribution(badge) if badge is not None else None
        region = self.regions.get(site_id, "")
        found = self._index.get((stage, category))
        covering: Sequence[_Contract] = ()
        if found is not None:
            by_region, by_site = found
            in_region, at_site = by_region.get(region, ()), by_site.get(site_id, ())
            if not at_site:
                covering = in_region
            elif not in_region:
                covering = at_site
            else:
                covering = sorted({*in_region, *at_site}, key=lambda c: c.order)
        violation = False
        if attribution is not None and stage in attribution.stages:
            who = attribution.contractor_bin
            mine = tuple(c for c in covering if c.terms.contractor_bin == who)
            if waived or not mine:
                pool = self._active.get(stage, {}).get(category, [])
                own = tuple(c for c in pool if c.terms.contractor_bin == who)
                violation = bool(own) and not mine
                result = own if waived else mine
            else:
                result = mine
        else:
            result = tuple(covering)
        plan[key] = (result, violation)
        return result, violation


def _risky(chains: Mapping[Chain, int], manual: Mapping[Chain, int] | None = None) -> set[Chain]:
    """Chains (candidate lists) whose tickets must be allocated one by one in this bucket.

    An upper bound on what can reach each contract: a chain's whole demand reaches its
    first contract; what can reach the next is at most what the previous one may
    overflow, over all chains. A contract that may run out (0 < room < that bound) is
    *tight*. If only single-contract chains reach a tight contract, order does not
    matter: it is paid up to its room and the rest is over its cap, whichever tickets
    come first (ticket counts are per contract, paid or over, so they do not depend on
    which ticket crosses the cap either). Otherwise every chain reaching it is risky.
    Everywhere else a group's first contract with room takes all of it.

    ``manual``: a chain's grams on manual tickets. Which tickets are paid at a tight
    contract decides how much of its line rests on manual evidence, so a tight contract
    reached by both manual and device grams makes its chains risky too.
    """
    reach = dict(chains)
    at: dict[_Contract, list[Chain]] = defaultdict(list)
    for chain in chains:
        for c in chain:
            at[c].append(chain)
    risky: set[Chain] = set()
    for c in sorted(at, key=lambda c: c.order):
        reaching = [ch for ch in at[c] if reach[ch] > 0]
        if not reaching:
            continue
        inflow = sum(reach[ch] for ch in reaching)
        room = c.room()
        if 0 < room < inflow and any(len(ch) > 1 for ch in reaching):
            risky.update(reaching)
        elif 0 < room < inflow and manual is not None:
            by_hand = sum(manual.get(ch, 0) for ch in reaching)
            if 0 < by_hand < inflow:
                risky.update(reaching)
        overflow = max(0, inflow - room)
        for ch in at[c]:
            reach[ch] = min(reach[ch], overflow)
    return risky


class Scope:
    """Which contractors' statements a group's tickets belong to in a bucket: those with
    a candidate contract for the group in some stage, and a badge's contractor whose
    contracts miss the site (the tickets are held in that contractor's statement)."""

    def __init__(
        self,
        contracts: Sequence[Terms],
        bucket: Bucket,
        regions: Mapping[str, str],
        badges: BadgeMap,
    ) -> None:
        self._states = _states(contracts)
        self._cands = _Candidates(self._states, regions, badges)
        self._cands.enter(bucket)
        self._cache: dict[GroupKey, frozenset[str]] = {}

    def contractors(self, key: GroupKey) -> frozenset[str]:
        hit = self._cache.get(key)
        if hit is None:
            found: set[str] = set()
            for stage in self._states:
                cs, violation = self._cands.get(stage, key)
                found.update(c.terms.contractor_bin for c in cs)
                who = self._cands.attribution(key[2]) if key[2] is not None else None
                if violation and who is not None:
                    found.add(who.contractor_bin)
            hit = self._cache[key] = frozenset(found)
        return hit


def _single_order(single: tuple[TicketIn, GroupKey, bool]) -> tuple[datetime, str, int]:
    t = single[0]
    return (t.weighed_at, t.device_id, t.seq)


def _states(contracts: Sequence[Terms]) -> dict[str, list[_Contract]]:
    """Allocation state per contract, by stage, in contract order."""
    states: dict[str, list[_Contract]] = {}
    for terms in sorted(contracts, key=lambda c: (c.period_start, c.contract_id, c.version)):
        stage = states.setdefault(terms.stage, [])
        stage.append(_Contract(terms, len(stage)))
    return states


def _hold_index(holds: Iterable[HoldIn]) -> dict[tuple[str, int], dict[str, HoldStatus]]:
    index: dict[tuple[str, int], dict[str, HoldStatus]] = defaultdict(dict)
    for h in holds:
        index[(h.ticket.device_id, h.ticket.seq)][h.reason] = h.status
    return index


def allocate(
    source: TicketSource,
    contracts: Sequence[Terms],
    *,
    through: date | None = None,
    mrp: MrpTable | None = None,
    badges: BadgeMap | None = None,
    holds: Sequence[HoldIn] = (),
    record_shares: bool = False,
    ticket_level: bool = False,
) -> Allocation:
    """Allocate every ticket from the earliest contract start up to ``through``.

    Deterministic in its inputs, never in their order. ``ticket_level`` skips the
    group shortcut (every ticket one by one); ``record_shares`` implies it.
    """
    badges = badges or BadgeMap()
    alloc = Allocation(shares=[] if record_shares else None)
    ticket_level = ticket_level or record_shares
    if not contracts:
        return alloc
    first = min(c.period_start for c in contracts)
    last = through or max(c.period_end for c in contracts)
    cuts: set[date] = set(badges.cuts)
    if mrp is not None:
        cuts.update(mrp.cuts)
    for ct in contracts:
        cuts.update((ct.period_start, ct.period_end + timedelta(days=1)))
    buckets = make_buckets(first, last, cuts)
    states = _states(contracts)
    stages = sorted(states)
    cands = _Candidates(states, source.site_regions(), badges)
    hold_status = _hold_index(holds)
    held_tickets = {(h.ticket.device_id, h.ticket.seq): h.ticket for h in holds}
    # Tickets out of payment because of a recorded (scan) hold that is not released.
    excluded = {
        k
        for k, reasons in hold_status.items()
        if any(s is not HoldStatus.RELEASED for r, s in reasons.items() if r != SITE_OUTSIDE_REGION)
    }
    excluded_by_bucket: dict[int, list[TicketIn]] = defaultdict(list)
    los = [b.lo for b in buckets]
    for k in excluded:
        t = held_tickets[k]
        if buckets and buckets[0].lo <= t.weighed_at < buckets[-1].hi:
            excluded_by_bucket[bisect.bisect_right(los, t.weighed_at) - 1].append(t)
    sums_by_bucket = source.group_sums(buckets)

    for bucket, sums in zip(buckets, sums_by_bucket, strict=True):
        cands.enter(bucket)
        month = bucket.month
        for stage_states in states.values():
            for c in stage_states:
                if c.terms.active(bucket.first, bucket.last):
                    rate = c.terms.rate_kzt_per_t(month_start(bucket.first), mrp)
                    c.enter_month(month, rate, alloc)
                    alloc.rates[(c.terms.contract_id, c.terms.version, month)] = rate
        for t in excluded_by_bucket.get(bucket.index, ()):
            acc = sums.get(t.group)
            if acc is not None:
                acc[0] -= t.net_g
                acc[1] -= 1
                if t.manual:
                    acc[2] -= t.net_g
            _record_held(alloc, t, hold_status, cands, stages)
        # The bucket's demand summed by *route* — the groups' chains in every stage —
        # then per stage by chain (groups with no candidate by category instead): a
        # few hundred sums, not thousands of groups.
        by_route: dict[tuple[Chain | str, ...], list[int]] = {}
        region_held: set[GroupKey] = set()
        routes = cands.routes(stages)
        for key, acc in sums.items():
            if acc[0] <= 0:
                continue
            route = routes.get(key) or cands.route(key, stages)
            if route[1]:
                region_held.add(key)
                continue
            entry = by_route.get(route[0])
            if entry is None:
                by_route[route[0]] = [acc[0], acc[1], acc[2]]
            else:
                entry[0] += acc[0]
                entry[1] += acc[1]
                entry[2] += acc[2]
        totals: list[dict[Chain | str, list[int]]] = []
        for i in range(len(stages)):
            tot: dict[Chain | str, list[int]] = {}
            for route_chains, (grams, count, by_hand) in by_route.items():
                at = route_chains[i]
                entry = tot.get(at)
                if entry is None:
                    tot[at] = [grams, count, by_hand]
                else:
                    entry[0] += grams
                    entry[1] += count
                    entry[2] += by_hand
            totals.append(tot)
        # Groups whose badge contractor's contracts miss the site are held as a whole,
        # except tickets an operator released (paid with the region waived).
        expand: set[GroupKey] = set(region_held)
        if ticket_level:
            expand.update(k for k, acc in sums.items() if acc[0] > 0)
        else:
            for i in range(len(stages)):
                chains = {at: e for at, e in totals[i].items() if not isinstance(at, str)}
                risky = _risky(
                    {at: e[0] for at, e in chains.items()}, {at: e[2] for at, e in chains.items()}
                )
                if risky:
                    expand.update(
                        k
                        for k, acc in sums.items()
                        if acc[0] > 0 and k not in region_held and routes[k][0][i] in risky
                    )
        singles: list[tuple[TicketIn, GroupKey, bool]] = []
        if expand:
            alloc.expanded_buckets += 1
            for t in source.tickets(bucket, expand):
                k = (t.device_id, t.seq)
                if k in excluded:
                    continue
                waived = False
                group = t.group
                if group in region_held:
                    status = hold_status.get(k, {}).get(SITE_OUTSIDE_REGION)
                    if status is HoldStatus.RELEASED:
                        waived = True
                    else:
                        if status is None:
                            alloc.found_holds.append(t)
                        _record_held(alloc, t, hold_status, cands, stages)
                        continue
                singles.append((t, group, waived))
            singles.sort(key=_single_order)
            alloc.expanded_tickets += len(singles)
        for i, stage in enumerate(stages):
            tot = totals[i]
            known = cands.plan(stage)
            for key in expand:  # allocated one by one below, not with their chain
                acc = sums[key]
                if acc[0] > 0 and key not in region_held:
                    entry = tot[routes[key][0][i]]
                    entry[0] -= acc[0]
                    entry[1] -= acc[1]
                    entry[2] -= acc[2]
            for at, (grams, count, by_hand) in tot.items():
                if grams <= 0:
                    continue
                if isinstance(at, str):
                    acc = alloc.unattributed[(stage, at, month)]
                    acc[0] += grams
                    acc[1] += count
                    continue
                # Every ticket of the chain lands on one contract (its first with room),
                # except where a lone contract reaches its cap: paid up to the cap, the
                # rest over it, all on that contract.
                left = grams
                taker = at[-1]
                for c in at:
                    room = c.room()
                    if room > 0:
                        take = min(left, room)
                        # A partial take happens only where the chain's grams are all
                        # manual or all device (_risky expands a mixed one).
                        assert take == grams or by_hand in (0, grams)
                        c.take(take, by_hand if take == grams else (take if by_hand else 0))
                        left -= take
                        taker = c
                        break
                if left:
                    assert taker is at[-1], "a partial take happens only in a lone chain"
                    taker.line[1] += left
                taker.line[2] += count
            per = known
            shares = alloc.shares
            for t, group, waived in singles:
                cs = cands.get(stage, group, waived)[0] if waived else per[group][0]
                left = t.net_g
                touched: list[_Contract] = []
                for c in cs:
                    take = min(left, c.room())
                    if take <= 0:
                        continue
                    c.take(take, take if t.manual else 0)
                    touched.append(c)
                    left -= take
                    if shares is not None:
                        shares.append(Share(t, stage, Portion.PAID, take, c.terms))
                    if left == 0:
                        break
                if left:
                    if cs:
                        cs[-1].line[1] += left
                        if cs[-1] not in touched:
                            touched.append(cs[-1])
                    else:
                        acc = alloc.unattributed[(stage, t.category, month)]
                        acc[0] += left
                        acc[1] += 1
                    if shares is not None:
                        portion = Portion.OVER_CAP if cs else Portion.NO_CONTRACT
                        over_to = cs[-1].terms if cs else None
                        shares.append(Share(t, stage, portion, left, over_to))
                for c in touched:
                    c.line[2] += 1
    alloc.held.sort(key=lambda h: h.ticket.order_key)
    alloc.found_holds.sort(key=lambda t: t.order_key)
    return alloc


def _record_held(
    alloc: Allocation,
    t: TicketIn,
    hold_status: Mapping[tuple[str, int], Mapping[str, HoldStatus]],
    cands: _Candidates,
    stages: Sequence[str],
) -> None:
    reasons = dict(hold_status.get((t.device_id, t.seq), {}))
    attribution: dict[str, list[str]] = defaultdict(list)
    for stage in stages:
        cs, violation = cands.get(stage, t.group)
        if violation:
            reasons.setdefault(SITE_OUTSIDE_REGION, HoldStatus.OPEN)
            who = cands.attribution(t.badge)
            if who is not None:
                attribution[who.contractor_bin].append(stage)
        elif cs:
            attribution[cs[0].terms.contractor_bin].append(stage)
    shown = {r: s for r, s in reasons.items() if s is not HoldStatus.RELEASED}
    alloc.held.append(
        HeldEntry(
            t,
            tuple(sorted((r, str(s)) for r, s in shown.items())),
            tuple(sorted((b, tuple(sorted(s))) for b, s in attribution.items())),
        )
    )
