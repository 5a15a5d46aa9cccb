"""Disputes: a contractor challenges a ticket or a statement line; an operator answers.

Both sides see the whole record — the contractor's comment and the operator's
decision with its reason. Opening and deciding are audited. A decision is a record,
not a money movement: accepting a dispute over a held ticket is followed by releasing
the hold, and a corrected amount reaches the contractor as an adjusting statement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.identifiers import bin_problem
from server.ledger import audit
from server.ledger.accounting import Dispute, StoredStatement
from server.ledger.models import Ticket
from server.money.allocation import MissingRate
from server.money.attribution import owns_ticket
from server.people.accounts import NotFound, Scope

DECISIONS: Final = ("accept", "reject")


class DisputeError(ValueError):
    """A dispute request that cannot be done, with the reason."""


def _owns(session: Session, contractor_bin: str, ticket_id: int, weighed_at: datetime) -> bool:
    try:
        return owns_ticket(session, contractor_bin, ticket_id, weighed_at)
    except MissingRate as exc:
        raise DisputeError(f"the ticket's month cannot be computed: {exc}") from None


def open_dispute(
    session: Session,
    *,
    contractor_bin: str,
    comment: str,
    actor: str,
    ticket: tuple[str, int] | None = None,
    statement_id: int | None = None,
    line: str | None = None,
    now: datetime | None = None,
) -> Dispute:
    """Dispute a ticket (``(device_id, seq)``) or a line (``contract_id@vN:stage``) of
    one of the contractor's statements.

    Only the contractor's own: a ticket attributed to one of its contracts
    (:func:`server.money.attribution.owns_ticket`), a statement of its BIN. Anything
    else raises :class:`~server.people.accounts.NotFound`, word for word as for a
    ticket or statement that does not exist."""
    if problem := bin_problem(contractor_bin):
        raise DisputeError(f"contractor_bin: {problem}")
    if not comment.strip():
        raise DisputeError("comment: say what is wrong")
    if not actor.strip():
        raise DisputeError("who opens the dispute must be named")
    if (ticket is None) == (line is None):
        raise DisputeError("dispute either a ticket or a statement line")
    ticket_id = None
    if ticket is not None:
        found = session.execute(
            select(Ticket.id, Ticket.weighed_at).where(
                Ticket.device_id == ticket[0], Ticket.seq == ticket[1]
            )
        ).one_or_none()
        # Another contractor's ticket is answered exactly as a missing one.
        if found is None or not _owns(session, contractor_bin, found.id, found.weighed_at):
            raise NotFound(f"ticket {ticket[0]}:{ticket[1]}")
        ticket_id = found.id
    if statement_id is not None or line is not None:
        if statement_id is None:
            raise DisputeError("a disputed line needs its statement id")
        st = session.get(StoredStatement, statement_id)
        owner = st.contractor_bin if st else None
        Scope(contractor_bin).visible(owner, f"statement {statement_id}")
        assert st is not None
        if line is not None:
            known = {
                f"{ln['contract_id']}@v{ln['version']}:{ln['stage']}"
                for ln in json.loads(st.body)["lines"]
            }
            if line not in known:
                raise DisputeError(
                    f"line {line!r} is not in statement {statement_id}"
                    f" (lines: {', '.join(sorted(known)) or 'none'})"
                )
    now = now or datetime.now(UTC)
    dispute = Dispute(
        contractor_bin=contractor_bin,
        statement_id=statement_id,
        ticket_id=ticket_id,
        line=line,
        comment=comment,
        opened_by=actor[:100],
        opened_at=now,
        status="open",
    )
    session.add(dispute)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="dispute.opened",
        subject=f"dispute {dispute.id}",
        data={
            "dispute_id": dispute.id,
            "contractor_bin": contractor_bin,
            "ticket": f"{ticket[0]}:{ticket[1]}" if ticket else None,
            "statement_id": statement_id,
            "line": line,
            "comment": comment,
        },
        now=now,
    )
    return dispute


def decide(
    session: Session,
    dispute_id: int,
    decision: str,
    *,
    actor: str,
    reason: str,
    now: datetime | None = None,
) -> Dispute:
    """Accept or reject an open dispute, with the reason both sides will read."""
    if decision not in DECISIONS:
        raise DisputeError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    if not actor.strip():
        raise DisputeError("who decides must be named")
    if not reason.strip():
        raise DisputeError("a decision needs a reason")
    dispute = session.get(Dispute, dispute_id)
    if dispute is None:
        raise DisputeError(f"dispute {dispute_id} does not exist")
    if dispute.status != "open":
        raise DisputeError(f"dispute {dispute_id} is already {dispute.status}")
    now = now or datetime.now(UTC)
    dispute.status = "accepted" if decision == "accept" else "rejected"
    dispute.decided_by, dispute.decided_at, dispute.decision_reason = actor[:100], now, reason
    audit.append(
        session,
        actor=actor,
        action=f"dispute.{dispute.status}",
        subject=f"dispute {dispute.id}",
        data={"dispute_id": dispute.id, "decision": dispute.status, "reason": reason},
        now=now,
    )
    session.flush()
    return dispute


@dataclass(frozen=True, slots=True)
class DisputeView:
    dispute: Dispute
    ticket: str | None

    def to_dict(self) -> dict[str, Any]:
        d = self.dispute
        return {
            "id": d.id,
            "contractor_bin": d.contractor_bin,
            "ticket": self.ticket,
            "statement_id": d.statement_id,
            "line": d.line,
            "comment": d.comment,
            "opened_by": d.opened_by,
            "opened_at": d.opened_at.isoformat(),
            "status": d.status,
            "decided_by": d.decided_by,
            "decided_at": d.decided_at.isoformat() if d.decided_at else None,
            "decision_reason": d.decision_reason,
        }


def list_disputes(
    session: Session, *, contractor_bin: str | None = None, status: str | None = None
) -> list[DisputeView]:
    q = select(Dispute, Ticket.device_id, Ticket.seq).outerjoin(
        Ticket, Ticket.id == Dispute.ticket_id
    )
    if contractor_bin is not None:
        q = q.where(Dispute.contractor_bin == contractor_bin)
    if status is not None:
        q = q.where(Dispute.status == status)
    return [
        DisputeView(d, f"{device_id}:{seq}" if device_id is not None else None)
        for d, device_id, seq in session.execute(q.order_by(Dispute.id))
    ]
