"""What a statement computation reads from the ledger, recorded so it can be read again.

It owns the inputs of a computation: contract versions as allocation
:class:`~server.money.allocation.Terms`, site regions, the ledger's tickets as an
allocation source (sums in SQL, single tickets on demand), the :class:`Inputs` a run
records (high-water marks, reference data versions, rounding policy, engine), and the
tickets in a stored statement's scope with the SHA-256 over their stored rows — the
evidence digest taken at approval and checked again by :mod:`server.money.verification`.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
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

from server.ledger import audit
from server.ledger.accounting import StatementRun, StoredStatement
from server.ledger.manual import is_manual
from server.ledger.models import Contract, Site, Ticket
from server.ledger.types import UtcDateTime
from server.money import badges, hold_rules, holds, mrp
from server.money.allocation import (
    ENGINE,
    Bucket,
    GroupKey,
    Scope,
    Terms,
    TicketIn,
    make_buckets,
)
from server.money.amounts import ROUNDING_POLICY, next_month


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
            index, category, site_id, badge, device_id, grams, count = row[:7]
            key = (category, site_id, badge)
            # Rows are per device: a manual namespace's rows are all manual tickets.
            by_hand = grams if is_manual(device_id) else 0
            acc = out[index].get(key)
            if acc is None:
                out[index][key] = [grams, count, by_hand]
            else:
                acc[0] += grams
                acc[1] += count
                acc[2] += by_hand
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
                    TicketIn(
                        tid,
                        device_id,
                        seq,
                        at,
                        site_id,
                        region,
                        category,
                        net_g,
                        badge,
                        is_manual(device_id),
                    )
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
        hold_rules_version=reference.latest_version(session, hold_rules.KIND),
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


# --------------------------------------------------------------------------- scope and evidence


def row_text(row: Any) -> str:
    """A stored ticket row as the evidence digest reads it: every column, the payload in hex."""
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
    inputs = Inputs.from_dict(run_inputs(session, first_row))
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
        h.update(row_text(row).encode())
        h.update(b"\n")
    return h.hexdigest(), len(rows)


def run_inputs(session: Session, stored: StoredStatement) -> dict[str, Any]:
    """The inputs recorded by the run that computed ``stored``."""
    run = session.get(StatementRun, stored.run_id)
    if run is None:
        raise StatementError(f"statement {stored.id}: its run {stored.run_id} is missing")
    data: dict[str, Any] = json.loads(run.inputs)
    return data
