"""The audit log: its entries (who did what, with which credential), its head (for an
auditor to keep) and a full verification."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from server.api.deps import RowId, SessionDep
from server.ledger import audit
from server.ledger.accounting import AuditEntry

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("/entries")
def entries(
    session: SessionDep,
    action: str | None = Query(None, max_length=64, description="e.g. statement.approved"),
    subject: str | None = Query(None, max_length=200, description="e.g. statement 7"),
    after: int = Query(0, ge=0, description="entries after this seq"),
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    """Entries oldest first; ``credential`` is how the actor proved itself (``token #12``,
    ``password``, ``web session``), where the entry records it."""
    q = select(AuditEntry).where(AuditEntry.seq > after)
    if action:
        q = q.where(AuditEntry.action == action)
    if subject:
        q = q.where(AuditEntry.subject == subject)
    out = []
    for e in session.scalars(q.order_by(AuditEntry.seq).limit(limit)):
        data = json.loads(e.data)
        out.append(
            {
                "seq": e.seq,
                "at": e.at.isoformat(),
                "actor": e.actor,
                "credential": data.get("credential") if isinstance(data, dict) else None,
                "action": e.action,
                "subject": e.subject,
                "data": data,
                "hash": e.hash,
            }
        )
    return out


@router.get("/head")
def head(session: SessionDep) -> dict[str, Any]:
    return audit.head(session).to_dict()


@router.get("/verify")
def verify(
    session: SessionDep, seq: RowId | None = None, hash: str | None = None
) -> dict[str, Any]:
    expected = audit.Head(seq, hash, None) if seq is not None and hash else None
    report = audit.verify(session, expected)
    return {
        "ok": report.ok,
        "entries": report.entries,
        "head": report.head.to_dict(),
        "problems": report.problems,
    }
