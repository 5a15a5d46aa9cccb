"""The audit log: its head (for an auditor to keep) and a full verification."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from server.api.deps import RowId, SessionDep
from server.money import audit

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


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
