"""Tickets: scoped lists, CSV export, and (staff only; "not found" for others) the
evidence of one ticket."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from server.api.deps import (
    PERIOD_PATTERN,
    ContractorScope,
    CurrentUser,
    RowId,
    SessionDep,
    check_period,
    documented,
)
from server.money.evidence import ConfigUsed, Evidence, evidence_for
from server.money.tickets import TicketFilter, TicketRow, all_tickets, csv_lines, find_tickets
from server.people.accounts import Account, NotFound

router = APIRouter(prefix="/api/v1", tags=["tickets"])

_IDENT = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"


def ticket_filter(
    period: Annotated[str, Query(pattern=PERIOD_PATTERN, description="YYYY-MM, local")],
    category: Annotated[str | None, Query(pattern=_IDENT)] = None,
    site: Annotated[str | None, Query(pattern=_IDENT)] = None,
    device: Annotated[str | None, Query(pattern=_IDENT)] = None,
    contractor: Annotated[str | None, Query(pattern=r"^\d{12}$")] = None,
) -> TicketFilter:
    check_period(period)
    return TicketFilter(period, category, site, device, contractor)


FilterDep = Annotated[TicketFilter, Depends(ticket_filter)]


def ticket_json(r: TicketRow) -> dict[str, Any]:
    return {
        "id": r.id,
        "device_id": r.device_id,
        "seq": r.seq,
        "weighed_at": r.weighed_at.isoformat(),
        "site_id": r.site_id,
        "scale_id": r.scale_id,
        "category": r.category,
        "badge": r.badge,
        "gross_kg": format(r.gross_kg, "f"),
        "tare_kg": format(r.tare_kg, "f"),
        "net_kg": format(r.net_kg, "f"),
        "chain_ok": r.chain_ok,
        "hash": r.hash,
        "evidence": r.evidence,
        "attributions": [
            {
                "contract_id": a.contract_id,
                "stage": a.stage,
                "portion": a.portion,
                "kg": format(a.kg, "f"),
            }
            for a in r.attributions
        ],
    }


@router.get("/tickets")
def list_tickets(
    session: SessionDep,
    scope: ContractorScope,
    flt: FilterDep,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> dict[str, Any]:
    result = find_tickets(session, scope, flt, page)
    return {
        "page": result.page,
        "pages": result.pages,
        "total": result.total,
        "net_tonnes": format(result.net_tonnes, "f"),
        "tickets": [ticket_json(r) for r in result.rows],
    }


@router.get(
    "/tickets.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def export_tickets(
    session: SessionDep, scope: ContractorScope, flt: FilterDep
) -> StreamingResponse:
    return csv_response(list(csv_lines(all_tickets(session, scope, flt))), flt)


def csv_response(lines: list[str], flt: TicketFilter) -> StreamingResponse:
    # Rendered before the response starts: the request's database session closes when
    # the route returns, and an error half-way must not yield a truncated file.
    name = f"tickets-{flt.period}" + (f"-{flt.contractor_bin}" if flt.contractor_bin else "")
    return StreamingResponse(
        iter(lines),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def evidence_json(e: Evidence) -> dict[str, Any]:
    t = e.ticket
    return {
        "ticket_id": t.id,
        "device_id": t.device_id,
        "seq": t.seq,
        "signature": e.signature.value,
        "hash_ok": e.hash_ok,
        "intact": e.intact,
        "mismatches": list(e.mismatches),
        "decode_problem": e.decode_problem,
        "public_key": e.device.public_key if e.device else None,
        "device_status": e.device.status if e.device else None,
        "payload": e.payload_text,
        "frames": [{"index": f.index, "text": f.text, "hex": f.hex} for f in e.frames],
        "prev": None if e.prev is None else {"ticket_id": e.prev.ticket_id, "hash": e.prev.hash},
        "next": None if e.next is None else {"ticket_id": e.next.ticket_id, "hash": e.next.hash},
        "prev_link": e.prev_link.value,
        "next_link": e.next_link.value,
        "config": None if e.config is None else config_json(e.config),
        "evidence": "manual" if e.manual is not None else "device",
        "manual": None if e.manual is None else manual_json(e),
    }


def manual_json(e: Evidence) -> dict[str, Any]:
    """Who entered a manual ticket, from what."""
    m = e.manual
    assert m is not None
    return {
        "ticket_no": m.ticket_no,
        "source": m.source,
        "source_name": m.source_name,
        "source_line": m.source_line,
        "attachment_sha256": m.attachment_sha256,
        "vehicle_plate": m.vehicle_plate,
        "contractor_bin": m.contractor_bin,
        "entered_by": m.entered_by,
        "entered_at": m.entered_at.isoformat(),
    }


def config_json(c: ConfigUsed) -> dict[str, Any]:
    """The signed configuration a weighing names (``found``: the ledger holds it)."""
    if not c.found:
        return {"revision": c.revision, "found": False}
    return {
        "revision": c.revision,
        "found": True,
        "settings": c.settings,
        "issued_by": c.issued_by,
        "issued_at": c.issued_at.isoformat() if c.issued_at else None,
        "public_key": c.public_key,
        "signature_ok": c.signature_ok,
    }


@router.get("/tickets/{ticket_id}/evidence", responses=documented(404))
def ticket_evidence(session: SessionDep, user: CurrentUser, ticket_id: RowId) -> dict[str, Any]:
    return evidence_json(visible_evidence(session, user, ticket_id))


def visible_evidence(session: Session, user: Account, ticket_id: int) -> Evidence:
    """A ticket's evidence (staff only): for anyone else, as for a missing ticket."""
    evidence = evidence_for(session, ticket_id) if user.is_staff else None
    if evidence is None:
        raise NotFound(f"ticket {ticket_id}")
    return evidence
