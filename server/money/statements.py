"""Statements from the ledger: compute, store, approve, pay, correct and verify.

``statements_for`` / ``statement_for`` compute a preview from the current ledger (the
demo, the read API). The recorded workflow:

* ``compute`` scans new tickets for holds, allocates once over every period asked
  for, and stores each contractor's statement as a ``draft`` with the inputs it used
  (ticket high-water mark, contract versions, MRP table, badge map and hold rules
  versions, hold high-water marks, rounding policy, engine version) and its SHA-256.
  Where a statement for that contractor and month is already approved, a recomputed
  one that pays differently becomes a draft ``adjustment`` referencing it.
* ``approve`` freezes a draft (also taking a SHA-256 over every ticket in its scope);
  ``pay`` marks an approved statement paid. Both are audited.
* ``verify`` re-checks every stored statement: its body against its hash and the
  audit log, a fresh computation from its recorded inputs against its body, and the
  tickets in its scope against their signed payloads and the approval-time digest.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any

from sqlalchemy import (
    ColumnClause,
    ColumnElement,
    column,
    func,
    literal_column,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from server.ledger.accounting import AuditEntry, StatementRun, StoredStatement
from server.ledger.models import Contract, Device, Site, Ticket
from server.ledger.types import UtcDateTime
from server.money import audit, badges, holds, mrp
from server.money.allocation import (
    ENGINE,
    SITE_OUTSIDE_REGION,
    Allocation,
    Bucket,
    GroupKey,
    Portion,
    Scope,
    Terms,
    TicketIn,
    allocate,
    make_buckets,
)
from server.money.amounts import ROUNDING_POLICY, money_context, next_month
from server.money.contracts import latest_versions
from server.money.lines import HeldLine, Statement, StatementLine, UnpaidLine, build_statements


class StatementError(ValueError):
    """A workflow request that cannot be done, with the reason."""


def parse_period(period: str) -> tuple[date, date]:
    """``YYYY-MM`` -> (first day, last day)."""
    try:
        first = datetime.strptime(period, "%Y-%m").date()
    except ValueError:
        raise ValueError(f"period {period!r} is not YYYY-MM") from None
    return first, next_month(first) - timedelta(days=1)


def terms_of(c: Contract) -> Terms:
    return Terms(
        contract_id=c.contract_id,
        version=c.version,
        contractor_bin=c.contractor_bin,
        contractor_name=c.contractor_name,
        category=c.category,
        stage=c.stage,
        regions=frozenset(c.region_list),
        site_ids=frozenset(c.site_list),
        period_start=c.period_start,
        period_end=c.period_end,
        cap_t=c.cap_t,
        rate=c.rate,
        rate_unit=c.rate_unit,
        budget_cap_kzt=c.budget_cap_kzt,
    )


def site_regions(session: Session) -> dict[str, str]:
    return dict(session.execute(select(Site.site_id, Site.region)).all())


# --------------------------------------------------------------------------- SQL source


def _bucket_case(col: Any, his: Sequence[datetime], offset: int = 0) -> ColumnElement[Any]:
    """The index of the bucket ``col`` falls in, as a balanced tree of comparisons
    (about log2(buckets) per row instead of one per bucket)."""
    from sqlalchemy import case

    if len(his) == 1:
        return literal_column(str(offset))
    mid = len(his) // 2
    return case(
        (col < his[mid - 1], _bucket_case(col, his[:mid], offset)),
        else_=_bucket_case(col, his[mid:], offset + mid),
    )


class SqlSource:
    """Tickets in the ledger up to a high-water mark: sums in SQL, tickets on demand.

    The sums are also grouped by device, with each device's first and last ``seq``
    in the group, so a group is expanded through the ``(device_id, seq)`` index —
    reading just its own rows rather than the whole month's.
    """

    def __init__(self, session: Session, ticket_high_water: int, regions: Mapping[str, str]):
        self.session = session
        self.high_water = ticket_high_water
        self.regions = regions
        self._rows: dict[int, list[Any]] = defaultdict(list)
        """The summed rows per bucket, kept to find device ranges when one expands."""

    def site_regions(self) -> Mapping[str, str]:
        return self.regions

    def group_sums(self, buckets: Sequence[Bucket]) -> list[dict[GroupKey, list[int]]]:
        out: list[dict[GroupKey, list[int]]] = [{} for _ in buckets]
        if not buckets:
            return out
        conn = self.session.connection()
        rows: Iterable[Any]
        if conn.dialect.name == "postgresql":
            rows = self._postgresql_sums(conn, buckets)
        else:
            col = Ticket.weighed_at
            # Unary + keeps SQLite off the weighed_at index: a range covering most of
            # the table is read far faster in rowid order than row by row through it.
            in_range = literal_column("+tickets.weighed_at", type_=UtcDateTime())
            columns = (Ticket.category, Ticket.site_id, Ticket.badge, Ticket.device_id)
            rows = conn.execute(
                select(
                    _bucket_case(col, [b.hi for b in buckets]),
                    *columns,
                    func.sum(Ticket.net_g),
                    func.count(),
                    func.min(Ticket.seq),
                    func.max(Ticket.seq),
                )
                .where(
                    in_range >= buckets[0].lo,
                    in_range < buckets[-1].hi,
                    Ticket.id <= self.high_water,
                )
                .group_by(text("1"), *columns)
            ).all()
        kept = self._rows
        for row in rows:
            index, category, site_id, badge, _, grams, count = row[:7]
            key = (category, site_id, badge)
            acc = out[index].get(key)
            if acc is None:
                out[index][key] = [grams, count]
            else:
                acc[0] += grams
                acc[1] += count
            kept[index].append(row)
        return out

    def _postgresql_sums(self, conn: Connection, buckets: Sequence[Bucket]) -> list[Any]:
        """One branch per bucket, as a UNION ALL: each reads its month through the
        weighed_at index with the bucket a constant, and the branches run in parallel
        workers (Parallel Append). A single GROUP BY over a bucket expression runs in
        one process: the planner cannot tell how few the groups are. Plain driver SQL:
        no per-row processing beyond the driver's own."""
        # A hash aggregate of a few thousand groups fits in memory; the default 4 MB
        # makes the planner sort on disk instead.
        conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
        branch = (
            "SELECT {i}, category, site_id, badge, device_id, sum(net_g)::bigint,"
            " count(*), min(seq), max(seq) FROM tickets"
            " WHERE weighed_at >= %(lo{i})s AND weighed_at < %(hi{i})s AND id <= %(hw)s"
            " GROUP BY category, site_id, badge, device_id"
        )
        params: dict[str, Any] = {"hw": self.high_water}
        for b in buckets:
            params[f"lo{b.index}"] = b.lo.astimezone(UTC).replace(tzinfo=None)
            params[f"hi{b.index}"] = b.hi.astimezone(UTC).replace(tzinfo=None)
        sql = " UNION ALL ".join(branch.format(i=b.index) for b in buckets)
        return list(conn.exec_driver_sql(sql, params).all())

    def tickets(self, bucket: Bucket, groups: Collection[GroupKey]) -> list[TicketIn]:
        wanted = set(groups)
        spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for _, category, site_id, badge, device_id, _, _, lo, hi in self._rows[bucket.index]:
            if (category, site_id, badge) in wanted:
                spans[device_id].append((lo, hi))
        # One range per device: the union of its groups' ranges (few extra rows).
        ranges = sorted(
            (d, min(p[0] for p in ps), max(p[1] for p in ps)) for d, ps in spans.items()
        )
        categories = sorted({g[0] for g in wanted})
        # Plain columns: times are converted here, once per wanted row, instead of by
        # the column type for every row read.
        weighed_at: ColumnClause[Any] = column("weighed_at")
        conn = self.session.connection()
        rows: Iterable[Any]
        if conn.dialect.name == "postgresql":
            # One index lookup per device range, joined from arrays: one statement.
            rows = conn.exec_driver_sql(
                "SELECT t.id, t.device_id, t.seq, t.weighed_at, t.site_id, t.category,"
                " t.net_g, t.badge FROM unnest(%(d)s::text[], %(lo)s::bigint[],"
                " %(hi)s::bigint[]) AS r(d, lo, hi) JOIN tickets t ON t.device_id = r.d"
                " AND t.seq BETWEEN r.lo AND r.hi WHERE t.id <= %(hw)s"
                " AND t.category = ANY(%(cats)s::text[])",
                {
                    "d": [x[0] for x in ranges],
                    "lo": [x[1] for x in ranges],
                    "hi": [x[2] for x in ranges],
                    "hw": self.high_water,
                    "cats": categories,
                },
            ).all()
        else:
            # SQL expressions only here: building them costs more than PostgreSQL's
            # whole array join above.
            conditions = [
                (Ticket.device_id == d) & Ticket.seq.between(lo, hi) for d, lo, hi in ranges
            ]
            rows = []
            for i in range(0, len(conditions), 200):
                q = select(
                    Ticket.id,
                    Ticket.device_id,
                    Ticket.seq,
                    weighed_at,
                    Ticket.site_id,
                    Ticket.category,
                    Ticket.net_g,
                    Ticket.badge,
                ).where(
                    or_(*conditions[i : i + 200]),
                    Ticket.id <= self.high_water,
                    Ticket.category.in_(categories),
                )
                rows.extend(conn.execute(q).all())
        out = []
        for tid, device_id, seq, raw_at, site_id, category, net_g, badge in rows:
            if (category, site_id, badge) not in wanted:
                continue
            at = _utc(raw_at)
            if bucket.lo <= at < bucket.hi:
                region = self.regions.get(site_id, "")
                out.append(
                    TicketIn(tid, device_id, seq, at, site_id, region, category, net_g, badge)
                )
        return out


def _utc(value: datetime | str) -> datetime:
    """A stored UTC time as the driver returns it (SQLite: text) -> aware datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Inputs:
    """Everything a computation depends on besides the code: recorded with it."""

    ticket_high_water: int
    contracts: tuple[str, ...]
    """``contract_id@vN`` of every contract version allocated."""
    mrp_table_version: int | None
    badge_map_version: int | None
    hold_rules_version: int | None
    holds_high_water: int
    hold_resolutions_high_water: int
    rounding_policy: str = ROUNDING_POLICY
    engine: str = ENGINE

    def to_dict(self) -> dict[str, Any]:
        return {
            "ticket_high_water": self.ticket_high_water,
            "contracts": list(self.contracts),
            "mrp_table_version": self.mrp_table_version,
            "badge_map_version": self.badge_map_version,
            "hold_rules_version": self.hold_rules_version,
            "holds_high_water": self.holds_high_water,
            "hold_resolutions_high_water": self.hold_resolutions_high_water,
            "rounding_policy": self.rounding_policy,
            "engine": self.engine,
        }

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(audit.canonical_json(self.to_dict()).encode()).hexdigest()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Inputs:
        return cls(
            ticket_high_water=d["ticket_high_water"],
            contracts=tuple(d["contracts"]),
            mrp_table_version=d["mrp_table_version"],
            badge_map_version=d["badge_map_version"],
            hold_rules_version=d["hold_rules_version"],
            holds_high_water=d["holds_high_water"],
            hold_resolutions_high_water=d["hold_resolutions_high_water"],
            rounding_policy=d["rounding_policy"],
            engine=d["engine"],
        )

    def for_statement(self, own_contracts: Sequence[str]) -> dict[str, Any]:
        """What a statement body carries: all but the full contract list, which is
        replaced by its hash and the contractor's own contract versions."""
        d = dict(self._common)
        d["contractor_contracts"] = sorted(own_contracts)
        return d

    @cached_property
    def _common(self) -> dict[str, Any]:
        d = self.to_dict()
        d["contracts_sha256"] = hashlib.sha256(
            audit.canonical_json(d.pop("contracts")).encode()
        ).hexdigest()
        d["inputs_sha256"] = self.sha256
        return d


def current_inputs(session: Session, terms: Sequence[Terms], *, settle: bool = False) -> Inputs:
    """The inputs as the ledger stands; ``settle`` for inputs that will be recorded."""
    holds_hw, res_hw = holds.high_waters(session)
    from server.money import reference

    return Inputs(
        ticket_high_water=settled_ticket_high_water(session) if settle else _max_ticket_id(session),
        contracts=tuple(sorted(t.ref for t in terms)),
        mrp_table_version=reference.latest_version(session, mrp.KIND),
        badge_map_version=reference.latest_version(session, badges.KIND),
        hold_rules_version=reference.latest_version(session, holds.KIND),
        holds_high_water=holds_hw,
        hold_resolutions_high_water=res_hw,
    )


def _max_ticket_id(session: Session) -> int:
    return int(session.scalar(select(func.max(Ticket.id))) or 0)


def settled_ticket_high_water(session: Session, lock_timeout_s: int = 30) -> int:
    """The last ticket id below which no ticket can still appear.

    On PostgreSQL several ingest workers commit side by side, and an id is drawn before
    its transaction commits: ``max(id)`` may already show id 105 while id 100 is still
    in flight. A statement that recorded 105 would later find 100 "in its scope" and
    fail verification. A SHARE lock waits for every open insert into ``tickets`` and
    holds new ones back for the instant it takes to read the maximum; it is taken on a
    connection of its own and released at once, so ingest is not paused for the whole
    computation. SQLite has one writer, whose new ids are always above every committed
    one, so its maximum is already settled.
    """
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return _max_ticket_id(session)
    engine = bind.engine if isinstance(bind, Connection) else bind
    with engine.connect() as conn, conn.begin():
        conn.execute(text(f"SET LOCAL lock_timeout = '{int(lock_timeout_s)}s'"))
        conn.execute(text("LOCK TABLE tickets IN SHARE MODE"))
        return int(conn.scalar(select(func.max(Ticket.id))) or 0)


def contracts_of(session: Session, refs: Iterable[str]) -> list[Terms]:
    """The named contract versions (``id@vN``)."""
    keys = []
    for ref in refs:
        cid, _, v = ref.rpartition("@v")
        keys.append((cid, int(v)))
    out: list[Terms] = []
    for i in range(0, len(keys), 400):
        out.extend(
            terms_of(c)
            for c in session.scalars(
                select(Contract).where(
                    tuple_(Contract.contract_id, Contract.version).in_(keys[i : i + 400])
                )
            )
        )
    if len(out) != len(keys):
        found = {t.ref for t in out}
        missing = sorted(f"{c}@v{v}" for c, v in keys if f"{c}@v{v}" not in found)
        raise StatementError(f"contract versions missing from the ledger: {', '.join(missing)}")
    return sorted(out, key=lambda t: t.key)


# --------------------------------------------------------------------------- computation


@dataclass
class Computation:
    inputs: Inputs
    terms: list[Terms]
    allocation: Allocation
    statements: list[Statement]
    mrp: mrp.MrpTable | None
    badges: badges.BadgeMap
    regions: dict[str, str]


def compute(
    session: Session,
    periods: Sequence[str],
    *,
    inputs: Inputs | None = None,
    contractors: Collection[str] | None = None,
    record_shares: bool = False,
    settle: bool = False,
) -> Computation:
    """Allocate once through the last period and build every statement of ``periods``.

    Without ``inputs`` the current ledger state is used (latest contract versions,
    latest reference data, every ticket and hold recorded so far); ``settle`` when the
    inputs are recorded (:func:`settled_ticket_high_water`).
    """
    if not periods:
        raise StatementError("no period given")
    for p in periods:
        parse_period(p)
    through = max(parse_period(p)[1] for p in periods)
    if inputs is None:
        terms = [terms_of(c) for c in latest_versions(session) if c.period_start <= through]
        inputs = current_inputs(session, terms, settle=settle)
    else:
        terms = [t for t in contracts_of(session, inputs.contracts) if t.period_start <= through]
    mrp_table = mrp.load(session, inputs.mrp_table_version) if inputs.mrp_table_version else None
    badge_map = (
        badges.load(session, inputs.badge_map_version)
        if inputs.badge_map_version
        else (badges.BadgeMap())
    )
    regions = site_regions(session)
    recorded = holds.holds_as_of(
        session,
        holds_high_water=inputs.holds_high_water,
        resolutions_high_water=inputs.hold_resolutions_high_water,
        tickets_high_water=inputs.ticket_high_water,
        regions=regions,
    )
    source = SqlSource(session, inputs.ticket_high_water, regions)
    allocation = allocate(
        source,
        terms,
        through=through,
        mrp=mrp_table,
        badges=badge_map,
        holds=recorded,
        record_shares=record_shares,
    )
    own: dict[str, list[str]] = defaultdict(list)
    for t in terms:
        own[t.contractor_bin].append(t.ref)
    statements = [
        _with_inputs(st, inputs.for_statement(own[st.contractor_bin]))
        for st in build_statements(
            allocation, terms, sorted(set(periods)), mrp=mrp_table, contractors=contractors
        )
    ]
    return Computation(inputs, terms, allocation, statements, mrp_table, badge_map, regions)


def _with_inputs(st: Statement, inputs: dict[str, Any]) -> Statement:
    from dataclasses import replace

    return replace(st, inputs=inputs)


def statements_for(session: Session, period: str) -> list[Statement]:
    """Every contractor's statement for ``period`` from the current ledger (a preview)."""
    preview = preview_for(session, period)
    return [] if preview is None else preview.statements


def preview_for(session: Session, period: str) -> Computation | None:
    """The computation behind a preview, or None if no contract has started by then."""
    last = parse_period(period)[1]
    if not any(c.period_start <= last for c in latest_versions(session)):
        return None
    return compute(session, [period])


def statement_for(session: Session, contractor_bin: str, period: str) -> Statement | None:
    """One contractor's preview statement, or None if no contract of theirs overlaps it."""
    last = parse_period(period)[1]
    if not any(
        c.contractor_bin == contractor_bin and c.period_start <= last
        for c in latest_versions(session)
    ):
        return None
    found = compute(session, [period], contractors={contractor_bin}).statements
    return found[0] if found else None


# --------------------------------------------------------------------------- storage


def _line_key(line: Mapping[str, Any]) -> tuple[str, int, str]:
    return (line["contract_id"], int(line["version"]), line["stage"])


def _effective_lines(bodies: Iterable[Mapping[str, Any]]) -> dict[tuple[str, int, str], list[Any]]:
    """Lines already approved: an original plus every approved adjustment's deltas."""
    out: dict[tuple[str, int, str], list[Any]] = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
    with money_context():
        for body in bodies:
            for line in body["lines"]:
                acc = out[_line_key(line)]
                acc[0] += int(line["tickets"])
                acc[1] += Decimal(line["tonnes"])
                acc[2] += Decimal(line["amount_kzt"])
    return out


def adjustment_body(
    st: Statement, original: StoredStatement, prior: Sequence[StoredStatement]
) -> dict[str, Any] | None:
    """The draft correcting what was approved, or None if the new computation pays the same."""
    approved = [json.loads(original.body)] + [json.loads(p.body) for p in prior]
    before = _effective_lines(approved)
    now = _effective_lines([st.canonical()])
    lines = []
    with money_context():
        for key in sorted(set(before) | set(now)):
            b = before.get(key, [0, Decimal(0), Decimal(0)])
            n = now.get(key, [0, Decimal(0), Decimal(0)])
            if (b[1], b[2]) == (n[1], n[2]):
                continue
            lines.append(
                {
                    "contract_id": key[0],
                    "version": key[1],
                    "stage": key[2],
                    "tickets": n[0] - b[0],
                    "tonnes": format(n[1] - b[1], "f"),
                    "amount_kzt": format(n[2] - b[2], "f"),
                }
            )
        if not lines:
            return None
        total = sum((Decimal(ln["amount_kzt"]) for ln in lines), Decimal("0.00"))
    return {
        "kind": "adjustment",
        "contractor_bin": st.contractor_bin,
        "contractor_name": st.contractor_name,
        "period": st.period,
        "adjusts": {
            "statement_id": original.id,
            "sha256": original.sha256,
            "prior_adjustments": [{"statement_id": p.id, "sha256": p.sha256} for p in prior],
        },
        "lines": lines,
        "total_kzt": format(total, "f"),
        "recomputed": st.canonical(),
        "rounding_policy": st.rounding_policy,
        "inputs": st.inputs,
    }


def _sha(text_: str) -> str:
    return hashlib.sha256(text_.encode()).hexdigest()


def _comparable(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "inputs"}


@dataclass
class ComputeResult:
    run_id: int
    drafts: list[StoredStatement] = field(default_factory=list)
    unchanged: int = 0
    new_holds: int = 0
    scanned: int = 0


def compute_and_store(
    session: Session,
    periods: Sequence[str],
    *,
    actor: str,
    now: datetime | None = None,
    scan_progress: Callable[[int, int], None] | None = None,
) -> ComputeResult:
    """Scan for holds, compute, and store drafts (and draft adjustments); audited."""
    now = now or datetime.now(UTC)
    if session.get_bind().dialect.name == "postgresql":
        # Holds and resolutions are recorded by id high-water marks too: no resolution
        # or second run may commit an id below the marks this run records. The lock
        # conflicts with itself, so concurrent runs queue instead of deadlocking.
        session.execute(text("LOCK TABLE holds, hold_resolutions IN SHARE ROW EXCLUSIVE MODE"))
    scanned = holds.scan(session, actor=actor, now=now, progress=scan_progress)
    comp = compute(session, periods, settle=True)
    run = StatementRun(
        inputs=audit.canonical_json(comp.inputs.to_dict()),
        inputs_sha256=comp.inputs.sha256,
        computed_at=now,
    )
    session.add(run)
    session.flush()
    found = holds.record(
        session,
        [
            holds.Finding(
                t.ticket_id,
                SITE_OUTSIDE_REGION,
                f"badge contractor's contracts do not cover site {t.site_id}",
            )
            for t in comp.allocation.found_holds
        ],
        rules_version=comp.inputs.hold_rules_version,
        now=now,
    )
    result = ComputeResult(
        run.id, new_holds=scanned.new_holds + len(found), scanned=scanned.scanned
    )
    for st in comp.statements:
        existing = list(
            session.scalars(
                select(StoredStatement)
                .where(
                    StoredStatement.contractor_bin == st.contractor_bin,
                    StoredStatement.period == st.period,
                )
                .order_by(StoredStatement.id)
            )
        )
        frozen = [s for s in existing if s.status in ("approved", "paid")]
        drafts = [s for s in existing if s.status == "draft"]
        original = next((s for s in frozen if s.kind == "original"), None)
        if original is None:
            body = st.canonical()
            kind, adjusts, total = "original", None, st.total_kzt
        else:
            prior = [s for s in frozen if s.kind == "adjustment"]
            adj = adjustment_body(st, original, prior)
            if adj is None:
                for d in drafts:  # a pending correction is no longer needed
                    d.status = "superseded"
                result.unchanged += 1
                continue
            body, kind, adjusts, total = adj, "adjustment", original.id, Decimal(adj["total_kzt"])
        same = [d for d in drafts if _comparable(json.loads(d.body)) == _comparable(body)]
        if same:
            result.unchanged += 1
            continue
        for d in drafts:
            d.status = "superseded"
        text_ = audit.canonical_json(body)
        row = StoredStatement(
            run_id=run.id,
            contractor_bin=st.contractor_bin,
            period=st.period,
            kind=kind,
            adjusts_id=adjusts,
            status="draft",
            body=text_,
            sha256=_sha(text_),
            total_kzt=total,
            computed_at=now,
        )
        session.add(row)
        result.drafts.append(row)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="statements.computed",
        subject=f"run {run.id}",
        data={
            "run_id": run.id,
            "periods": sorted(set(periods)),
            "inputs_sha256": comp.inputs.sha256,
            "drafts": [[d.id, d.sha256] for d in result.drafts],
        },
        now=now,
    )
    return result


def _get(session: Session, statement_id: int) -> StoredStatement:
    row = session.get(StoredStatement, statement_id)
    if row is None:
        raise StatementError(f"statement {statement_id} does not exist")
    return row


def approve(
    session: Session, statement_id: int, *, actor: str, now: datetime | None = None
) -> StoredStatement:
    """draft -> approved: frozen from now on; the evidence digest is taken and audited."""
    if not actor.strip():
        raise StatementError("who approves must be named")
    row = _get(session, statement_id)
    if row.status != "draft":
        raise StatementError(f"statement {statement_id} is {row.status}, only a draft is approved")
    if _sha(row.body) != row.sha256:
        raise StatementError(f"statement {statement_id}: body does not match its SHA-256")
    if row.kind == "original" and session.scalar(
        select(func.count())
        .select_from(StoredStatement)
        .where(
            StoredStatement.contractor_bin == row.contractor_bin,
            StoredStatement.period == row.period,
            StoredStatement.kind == "original",
            StoredStatement.status.in_(("approved", "paid")),
        )
    ):
        raise StatementError(
            f"{row.contractor_bin} {row.period} already has an approved statement:"
            " compute again for an adjustment"
        )
    now = now or datetime.now(UTC)
    digest, count = evidence_digest(session, row)
    row.status, row.approved_at, row.approved_by = "approved", now, actor[:100]
    row.evidence_sha256 = digest
    audit.append(
        session,
        actor=actor,
        action="statement.approved",
        subject=f"statement {row.id}",
        data={
            "statement_id": row.id,
            "contractor_bin": row.contractor_bin,
            "period": row.period,
            "kind": row.kind,
            "sha256": row.sha256,
            "total_kzt": format(row.total_kzt, "f"),
            "evidence_sha256": digest,
            "evidence_tickets": count,
        },
        now=now,
    )
    return row


def pay(
    session: Session,
    statement_id: int,
    *,
    actor: str,
    reference: str,
    now: datetime | None = None,
) -> StoredStatement:
    """approved -> paid, with the payment order's reference."""
    if not actor.strip():
        raise StatementError("who records the payment must be named")
    if not reference.strip():
        raise StatementError("a payment needs the payment order's reference")
    row = _get(session, statement_id)
    if row.status != "approved":
        raise StatementError(
            f"statement {statement_id} is {row.status}, only an approved one is paid"
        )
    now = now or datetime.now(UTC)
    row.status, row.paid_at, row.paid_by, row.payment_ref = (
        "paid",
        now,
        actor[:100],
        reference[:100],
    )
    audit.append(
        session,
        actor=actor,
        action="statement.paid",
        subject=f"statement {row.id}",
        data={
            "statement_id": row.id,
            "sha256": row.sha256,
            "total_kzt": format(row.total_kzt, "f"),
            "payment_ref": reference[:100],
        },
        now=now,
    )
    return row


# --------------------------------------------------------------------------- evidence


def _row_text(row: Any) -> str:
    return audit.canonical_json(
        {
            "id": row.id,
            "device_id": row.device_id,
            "seq": row.seq,
            "event_id": row.event_id,
            "weighed_at": row.weighed_at.isoformat(),
            "time_synced": row.time_synced,
            "received_at": row.received_at.isoformat(),
            "site_id": row.site_id,
            "scale_id": row.scale_id,
            "category": row.category,
            "badge": row.badge,
            "gross_g": row.gross_g,
            "tare_g": row.tare_g,
            "net_g": row.net_g,
            "chain_ok": row.chain_ok,
            "payload": bytes(row.payload).hex(),
            "hash": row.hash,
            "sig": row.sig,
            "prev_hash": row.prev_hash,
            "raw": row.raw,
        }
    )


def scope_rows(session: Session, stored: Sequence[StoredStatement]) -> dict[int, list[Any]]:
    """Stored rows of every ticket in each statement's scope, in weighed-at order: the
    tickets of every group (category, site, badge) whose candidates include one of the
    contractor's contracts in that month, and its held tickets, up to the statement's
    high-water mark. The statements must share a run and a month: one pass over the
    month's tickets serves them all."""
    if not stored:
        return {}
    first_row = stored[0]
    inputs = Inputs.from_dict(_run_inputs(session, first_row))
    first, last = parse_period(first_row.period)
    terms = [t for t in contracts_of(session, inputs.contracts) if t.period_start <= last]
    badge_map = (
        badges.load(session, inputs.badge_map_version)
        if inputs.badge_map_version
        else badges.BadgeMap()
    )
    regions = site_regions(session)
    cuts: set[date] = set(badge_map.cuts)
    for t in terms:
        cuts.update((t.period_start, t.period_end + timedelta(days=1)))
    wanted: dict[str, list[int]] = defaultdict(list)
    held: dict[tuple[str, int], list[int]] = defaultdict(list)
    for row in stored:
        wanted[row.contractor_bin].append(row.id)
        for h in _held_lines(json.loads(row.body)):
            held[(h["device_id"], h["seq"])].append(row.id)
    out: dict[int, list[Any]] = {row.id: [] for row in stored}
    for bucket in make_buckets(first, last, cuts):
        scope = Scope(terms, bucket, regions, badge_map)
        for ticket in session.execute(
            select(*holds.EVIDENCE_COLUMNS)
            .where(
                Ticket.weighed_at >= bucket.lo,
                Ticket.weighed_at < bucket.hi,
                Ticket.id <= inputs.ticket_high_water,
            )
            .execution_options(yield_per=5000)
        ):
            targets = set(held.get((ticket.device_id, ticket.seq), ()))
            group = (ticket.category, ticket.site_id, ticket.badge)
            for contractor in scope.contractors(group):
                targets.update(wanted.get(contractor, ()))
            for sid in targets:
                out[sid].append(ticket)
    for rows in out.values():
        rows.sort(key=lambda r: (r.weighed_at, r.device_id, r.seq))
    return out


def _held_lines(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    if body.get("kind") == "adjustment":
        return list(body["recomputed"].get("held", []))
    return list(body.get("held", []))


def evidence_digest(session: Session, stored: StoredStatement) -> tuple[str, int]:
    rows = scope_rows(session, [stored])[stored.id]
    h = hashlib.sha256()
    for row in rows:
        h.update(_row_text(row).encode())
        h.update(b"\n")
    return h.hexdigest(), len(rows)


def _run_inputs(session: Session, stored: StoredStatement) -> dict[str, Any]:
    run = session.get(StatementRun, stored.run_id)
    if run is None:
        raise StatementError(f"statement {stored.id}: its run {stored.run_id} is missing")
    data: dict[str, Any] = json.loads(run.inputs)
    return data


# --------------------------------------------------------------------------- verify


@dataclass
class VerifyReport:
    statements: int = 0
    tickets_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths where two canonical bodies differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} entries stored, {len(b)} recomputed"]
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out += _diff(x, y, f"{path}[{i}]")
        return out
    return [] if a == b else [f"{path}: stored {a!r}, recomputed {b!r}"]


def verify(
    session: Session,
    *,
    period: str | None = None,
    statement_ids: Collection[int] | None = None,
    check_tickets: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Recompute every stored (non-superseded) statement from its recorded inputs."""
    report = VerifyReport()
    q = select(StoredStatement).where(StoredStatement.status != "superseded")
    if period is not None:
        q = q.where(StoredStatement.period == period)
    if statement_ids is not None:
        q = q.where(StoredStatement.id.in_(sorted(statement_ids)))
    rows = list(session.scalars(q.order_by(StoredStatement.id)))
    approvals = _approval_entries(session)
    by_run: dict[int, list[StoredStatement]] = defaultdict(list)
    for row in rows:
        by_run[row.run_id].append(row)
    keys = dict(session.execute(select(Device.device_id, Device.public_key)).all())
    checked: dict[int, str | None] = {}  # ticket id -> evidence problem (each checked once)
    done = 0
    for run_id, group in sorted(by_run.items()):
        try:
            inputs = Inputs.from_dict(_run_inputs(session, group[0]))
            run = session.get(StatementRun, run_id)
            assert run is not None
            if _sha(run.inputs) != run.inputs_sha256 or inputs.sha256 != run.inputs_sha256:
                report.problems.append(f"run {run_id}: recorded inputs do not match their SHA-256")
            comp = compute(session, sorted({r.period for r in group}), inputs=inputs)
        except Exception as exc:  # a broken input must be reported, not crash the check
            report.problems.append(f"run {run_id}: cannot recompute ({type(exc).__name__}: {exc})")
            continue
        fresh = {(s.contractor_bin, s.period): s for s in comp.statements}
        by_period: dict[str, list[StoredStatement]] = defaultdict(list)
        for row in group:
            by_period[row.period].append(row)
        for _period, same in sorted(by_period.items()):
            scopes: dict[int, list[Any]] | None = None
            if check_tickets:
                try:
                    scopes = scope_rows(session, same)
                except Exception as exc:  # reported, like any other broken input
                    report.problems.append(
                        f"run {run_id} {_period}: cannot read its tickets"
                        f" ({type(exc).__name__}: {exc})"
                    )
            for row in same:
                done += 1
                report.statements += 1
                name = (
                    f"statement {row.id} ({row.contractor_bin} {row.period} {row.kind}"
                    f" {row.status})"
                )
                _check_stored(session, row, name, fresh, approvals, report)
                if scopes is not None:
                    _check_evidence(row, scopes[row.id], name, keys, approvals, report, checked)
                if progress is not None:
                    progress(done, len(rows))
    return report


def _approval_entries(session: Session) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for e in session.scalars(
        select(AuditEntry).where(AuditEntry.action == "statement.approved").order_by(AuditEntry.seq)
    ):
        try:
            data = json.loads(e.data)
            out[int(data["statement_id"])] = data
        except (ValueError, KeyError, TypeError):
            continue  # an unreadable entry is audit verify's finding
    return out


def _check_stored(
    session: Session,
    row: StoredStatement,
    name: str,
    fresh: Mapping[tuple[str, str], Statement],
    approvals: Mapping[int, Mapping[str, Any]],
    report: VerifyReport,
) -> None:
    if _sha(row.body) != row.sha256:
        report.problems.append(f"{name}: body does not match its stored SHA-256 (edited)")
    if row.status in ("approved", "paid"):
        entry = approvals.get(row.id)
        if entry is None:
            report.problems.append(f"{name}: no approval in the audit log")
        elif entry.get("sha256") != row.sha256:
            report.problems.append(
                f"{name}: SHA-256 differs from the one approved in the audit log"
            )
    try:
        body = json.loads(row.body)
    except ValueError:
        report.problems.append(f"{name}: body is not JSON")
        return
    st = fresh.get((row.contractor_bin, row.period))
    if st is None:
        report.problems.append(f"{name}: recomputation has no statement for this contractor")
        return
    if row.kind == "original":
        expected: dict[str, Any] = st.canonical()
    else:
        original = session.get(StoredStatement, row.adjusts_id) if row.adjusts_id else None
        prior_refs = body.get("adjusts", {}).get("prior_adjustments", [])
        prior = [session.get(StoredStatement, p["statement_id"]) for p in prior_refs]
        if original is None or any(p is None for p in prior):
            report.problems.append(f"{name}: the statements it adjusts are missing")
            return
        adj = adjustment_body(st, original, [p for p in prior if p is not None])
        if adj is None:
            report.problems.append(f"{name}: recomputation pays the same as approved before")
            return
        expected = adj
    for d in _diff(body, expected)[:20]:
        report.problems.append(f"{name}: {d}")


def _check_evidence(
    row: StoredStatement,
    tickets: Sequence[Any],
    name: str,
    keys: Mapping[str, str],
    approvals: Mapping[int, Mapping[str, Any]],
    report: VerifyReport,
    checked: dict[int, str | None],
) -> None:
    h = hashlib.sha256()
    for t in tickets:
        h.update(_row_text(t).encode())
        h.update(b"\n")
        if t.id not in checked:
            checked[t.id] = holds.evidence_problem(t, keys.get(t.device_id))
        problem = checked[t.id]
        if problem:
            report.problems.append(f"{name}: ticket {t.device_id}:{t.seq} (id {t.id}): {problem}")
    report.tickets_checked += len(tickets)
    if row.status in ("approved", "paid"):
        digest = h.hexdigest()
        recorded = approvals.get(row.id, {}).get("evidence_sha256")
        if row.evidence_sha256 != digest or recorded != digest:
            report.problems.append(
                f"{name}: tickets in its scope changed since approval (evidence SHA-256"
                f" {digest[:16]}…, approved {str(recorded)[:16]}…)"
            )


def list_statements(
    session: Session,
    *,
    period: str | None = None,
    contractor_bin: str | None = None,
    include_superseded: bool = False,
) -> list[StoredStatement]:
    q = select(StoredStatement)
    if period is not None:
        q = q.where(StoredStatement.period == period)
    if contractor_bin is not None:
        q = q.where(StoredStatement.contractor_bin == contractor_bin)
    if not include_superseded:
        q = q.where(StoredStatement.status != "superseded")
    return list(
        session.scalars(
            q.order_by(StoredStatement.period, StoredStatement.contractor_bin, StoredStatement.id)
        )
    )


def body_statement(body: Mapping[str, Any]) -> Statement:
    """The statement a stored body records (``Statement.canonical()`` read back), for
    showing it with the same page as a preview; ``.canonical()`` of the result is the
    body again. An adjustment's body is a delta: pass its ``recomputed`` part."""
    if body.get("kind", "original") != "original":
        raise StatementError(f"a {body.get('kind')} body is a delta, not a statement")
    return Statement(
        contractor_bin=body["contractor_bin"],
        contractor_name=body["contractor_name"],
        period=body["period"],
        lines=tuple(
            StatementLine(
                ln["contract_id"],
                int(ln["version"]),
                ln["category"],
                ln["stage"],
                int(ln["tickets"]),
                Decimal(ln["tonnes"]),
                Decimal(ln["rate"]),
                ln["rate_unit"],
                None if ln["mrp_kzt"] is None else Decimal(ln["mrp_kzt"]),
                Decimal(ln["rate_kzt_per_t"]),
                Decimal(ln["amount_kzt"]),
            )
            for ln in body["lines"]
        ),
        over_cap=tuple(
            UnpaidLine(
                u["contract_id"],
                u["category"],
                u["stage"],
                Portion(u["reason"]),
                Decimal(u["tonnes"]),
            )
            for u in body["over_cap"]
        ),
        total_tonnes=Decimal(body["total_tonnes"]),
        total_kzt=Decimal(body["total_kzt"]),
        held=tuple(
            HeldLine(
                h["device_id"],
                int(h["seq"]),
                datetime.fromisoformat(h["weighed_at"]),
                h["site_id"],
                h["category"],
                Decimal(h["tonnes"]),
                tuple((r["reason"], r["status"]) for r in h["reasons"]),
                tuple(h["stages"]),
            )
            for h in body.get("held", ())
        ),
        rounding_policy=body["rounding_policy"],
        inputs=dict(body.get("inputs", {})),
    )
