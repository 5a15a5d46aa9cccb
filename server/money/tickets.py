"""Ticket lists for the pages, the JSON API and CSV export, always within a scope.

Staff see every ticket; a contractor sees only tickets attributed to its contracts
(``server.money.attribution``). Periods are local months (Asia/Almaty), like statements.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Final

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from server.ledger.manual import is_manual
from server.ledger.models import Ticket
from server.money.allocation import Share
from server.money.amounts import LOCAL_TZ, tonnes
from server.money.attribution import contractor_shares, shares_by_ticket
from server.money.inputs import parse_period
from server.people.accounts import Scope

PER_PAGE: Final = 100


@dataclass(frozen=True, slots=True)
class TicketFilter:
    period: str
    """YYYY-MM, local month."""
    category: str | None = None
    site_id: str | None = None
    device_id: str | None = None
    contractor_bin: str | None = None
    """Staff only: narrow to one contractor's tickets. A contractor's own scope wins."""


@dataclass(frozen=True, slots=True)
class Attribution:
    contract_id: str
    stage: str
    portion: str
    kg: Decimal


@dataclass(frozen=True, slots=True)
class TicketRow:
    id: int
    device_id: str
    seq: int
    weighed_at: datetime
    site_id: str
    scale_id: str
    category: str
    badge: str | None
    gross_kg: Decimal
    tare_kg: Decimal
    net_kg: Decimal
    chain_ok: bool | None
    hash: str
    net_g: int
    attributions: tuple[Attribution, ...] = ()

    @property
    def weighed_local(self) -> datetime:
        return self.weighed_at.astimezone(LOCAL_TZ)

    @property
    def evidence(self) -> str:
        """``device`` (signed by a device) or ``manual`` (entered by hand)."""
        return "manual" if is_manual(self.device_id) else "device"


@dataclass(frozen=True, slots=True)
class TicketPage:
    rows: list[TicketRow]
    total: int
    page: int
    pages: int
    net_tonnes: Decimal
    filter: TicketFilter = field(repr=False, default=TicketFilter(""))


def _kg(grams: int) -> Decimal:
    """Exact kilograms with gram resolution (three decimals), like the wire format."""
    return Decimal(grams).scaleb(-3)


def _bounds(period: str) -> tuple[datetime, datetime]:
    first, last = parse_period(period)
    lo = datetime.combine(first, time.min, LOCAL_TZ).astimezone(UTC)
    hi = datetime.combine(last + timedelta(days=1), time.min, LOCAL_TZ).astimezone(UTC)
    return lo, hi


def latest_period(session: Session) -> str | None:
    """The local month (``YYYY-MM``) of the newest weighing, None with no tickets: where
    staff pages open, rather than on an empty current month (uses the weighed_at index)."""
    newest = session.scalar(select(func.max(Ticket.weighed_at)))
    return None if newest is None else newest.astimezone(LOCAL_TZ).strftime("%Y-%m")


def _query(flt: TicketFilter) -> Select[Ticket]:
    lo, hi = _bounds(flt.period)
    q = select(Ticket).where(Ticket.weighed_at >= lo, Ticket.weighed_at < hi)
    if flt.category:
        q = q.where(Ticket.category == flt.category)
    if flt.site_id:
        q = q.where(Ticket.site_id == flt.site_id)
    if flt.device_id:
        q = q.where(Ticket.device_id == flt.device_id)
    return q


def _row(t: Ticket, shares: Iterable[Share] = ()) -> TicketRow:
    return TicketRow(
        id=t.id,
        device_id=t.device_id,
        seq=t.seq,
        weighed_at=t.weighed_at,
        site_id=t.site_id,
        scale_id=t.scale_id,
        category=t.category,
        badge=t.badge,
        gross_kg=_kg(t.gross_g),
        tare_kg=_kg(t.tare_g),
        net_kg=_kg(t.net_g),
        chain_ok=t.chain_ok,
        hash=t.hash,
        net_g=t.net_g,
        attributions=tuple(
            Attribution(
                s.contract.contract_id if s.contract else "",
                s.stage,
                s.portion.value,
                _kg(s.grams),
            )
            for s in shares
        ),
    )


_ORDER: Final = (Ticket.weighed_at, Ticket.device_id, Ticket.seq)


def _scoped_rows(session: Session, scope: Scope, flt: TicketFilter) -> list[TicketRow] | None:
    """All rows of a contractor's tickets, or None when the scope is everything and no
    contractor was asked for (then SQL pages the result)."""
    contractor_bin = scope.narrow(flt.contractor_bin)
    if contractor_bin is None:
        return None
    first, last = parse_period(flt.period)
    owned = shares_by_ticket(contractor_shares(session, contractor_bin, first, last))
    if not owned:
        return []
    tickets = session.scalars(_query(flt).order_by(*_ORDER))
    return [_row(t, owned[t.id]) for t in tickets if t.id in owned]


def find_tickets(
    session: Session, scope: Scope, flt: TicketFilter, page: int = 1, per_page: int = PER_PAGE
) -> TicketPage:
    """One page of tickets matching ``flt`` that ``scope`` may see, oldest first."""
    page = max(page, 1)
    rows = _scoped_rows(session, scope, flt)
    if rows is not None:
        total = len(rows)
        net_g = sum(r.net_g for r in rows)
        shown = rows[(page - 1) * per_page : page * per_page]
    else:
        q = _query(flt)
        sub = q.subquery()
        total, net_sum = session.execute(
            select(func.count(), func.coalesce(func.sum(sub.c.net_g), 0))
        ).one()
        net_g = int(net_sum)
        shown = [
            _row(t)
            for t in session.scalars(
                q.order_by(*_ORDER).offset((page - 1) * per_page).limit(per_page)
            )
        ]
    pages = max(1, -(-total // per_page))
    return TicketPage(shown, total, page, pages, tonnes(net_g), flt)


def all_tickets(session: Session, scope: Scope, flt: TicketFilter) -> Iterator[TicketRow]:
    """Every matching ticket ``scope`` may see (for export), streamed from the database."""
    rows = _scoped_rows(session, scope, flt)
    if rows is not None:
        yield from rows
        return
    for t in session.scalars(_query(flt).order_by(*_ORDER).execution_options(yield_per=500)):
        yield _row(t)


CSV_COLUMNS: Final = (
    "ticket_id",
    "device_id",
    "seq",
    "weighed_at_utc",
    "weighed_at_local",
    "site_id",
    "scale_id",
    "category",
    "badge",
    "gross_kg",
    "tare_kg",
    "net_kg",
    "chain_ok",
    "hash",
    "contracts",
)


def _cell(value: str) -> str:
    # A spreadsheet runs a cell that starts with = + - @ as a formula (CSV injection).
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_lines(rows: Iterable[TicketRow]) -> Iterator[str]:
    """RFC 4180 CSV, one string per line, header first; decimals as exact strings."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")

    def flush() -> str:
        text = buf.getvalue()
        buf.seek(0)
        buf.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for r in rows:
        writer.writerow(
            [
                r.id,
                r.device_id,
                r.seq,
                r.weighed_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                r.weighed_local.isoformat(timespec="seconds"),
                _cell(r.site_id),
                _cell(r.scale_id),
                _cell(r.category),
                _cell(r.badge or ""),
                format(r.gross_kg, "f"),
                format(r.tare_kg, "f"),
                format(r.net_kg, "f"),
                "" if r.chain_ok is None else str(r.chain_ok).lower(),
                r.hash,
                ";".join(
                    f"{a.contract_id}/{a.stage}/{a.portion}:{format(a.kg, 'f')}"
                    for a in r.attributions
                ),
            ]
        )
        yield flush()
