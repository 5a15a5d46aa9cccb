"""Contracts: the current versions with where each stands against its caps, each
contract's history, and file import. A contractor sees its own contracts only;
another's is "not found", as a missing one."""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path as FsPath
from typing import Any

from fastapi import APIRouter, HTTPException, Query, UploadFile
from fastapi.responses import Response
from sqlalchemy import select

from server.api.deps import ContractorScope, OperatorDep, SessionDep, documented
from server.api.routes.contractors import today_local
from server.ledger.models import Contract
from server.money import previews
from server.money.contracts import (
    READERS,
    ImportProblems,
    contract_row,
    latest_versions,
    read_file,
    store,
)
from server.money.standing import Standing, standings
from server.people.accounts import NotFound

router = APIRouter(prefix="/api/v1/contracts", tags=["contracts"])


def contract_view(c: Contract) -> dict[str, Any]:
    row = {k: _json(v) for k, v in contract_row(c).items()}
    return row | {"source": c.source, "imported_at": c.imported_at.isoformat()}


def _json(value: object) -> object:
    """Dates as ISO text and Decimals as exact text, for JSON."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date):
        return value.isoformat()
    return value


#: What a contract's standing adds to its terms (full precision decimal strings).
FIGURES = (
    "through",
    "tickets",
    "paid_t",
    "paid_kzt",
    "over_cap_t",
    "remaining_t",
    "remaining_kzt",
    "months",
    "problem",
)


def standing_view(c: Contract, standing: Standing, *, months: bool = True) -> dict[str, Any]:
    figures = standing.to_dict()
    return contract_view(c) | {k: figures[k] for k in FIGURES if months or k != "months"}


@router.get("", response_model=list[dict[str, Any]])
def contracts(
    session: SessionDep,
    scope: ContractorScope,
    months: bool = Query(False, description="add each contract's months (``months``)"),
) -> Response:
    """The current version of every contract the caller may see, with what the
    statements paid under it through this month (``paid_t``, ``paid_kzt``), the tonnes
    over its cap and what is left of its volume and budget caps; with ``months=true``
    the same per month."""
    today = today_local()

    def body() -> bytes:
        found = {s.terms.contract_id: s for s in standings(session, scope, today=today)}
        rows = [
            standing_view(c, found[c.contract_id], months=months)
            for c in latest_versions(session)
            if c.contract_id in found
        ]
        return json.dumps(rows, separators=(",", ":"), ensure_ascii=False).encode()

    # The same bytes while the ledger is unchanged (contracts are audited when imported,
    # so a new version changes the ledger's stamp too).
    data = previews.remember(session, ("contracts.json", scope.contractor_bin, today, months), body)
    return Response(data, media_type="application/json")


@router.get("/{contract_id}/versions", responses=documented(404))
def versions(session: SessionDep, scope: ContractorScope, contract_id: str) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(Contract).where(Contract.contract_id == contract_id).order_by(Contract.version)
    ).all()
    try:
        scope.visible(rows[-1].contractor_bin if rows else None, f"contract {contract_id}")
    except NotFound:
        raise HTTPException(404, detail=f"contract {contract_id} does not exist") from None
    return [contract_view(c) for c in rows]


@router.post("/import", responses=documented(400))
async def import_contracts(
    session: SessionDep, user: OperatorDep, file: UploadFile
) -> dict[str, Any]:
    """All or nothing: a file with any bad row imports nothing and lists every problem."""
    name = FsPath(file.filename or "upload").name
    suffix = FsPath(name).suffix.lower()
    if suffix not in READERS:
        raise HTTPException(422, detail=[f"{name}: use one of {', '.join(READERS)}"])
    data = await file.read()
    with tempfile.TemporaryDirectory() as tmp:
        path = FsPath(tmp) / name
        path.write_bytes(data)
        try:
            rows = read_file(path)
        except ImportProblems as exc:
            # Problems name the upload, not the temporary copy.
            raise HTTPException(
                422, detail=[p.replace(str(path), name) for p in exc.problems]
            ) from None
    rows = [replace(row, source=row.source.replace(str(path), name)) for row in rows]
    result = store(session, rows, actor=user.username, source=name)
    session.commit()
    return {"created": result.created, "amended": result.amended, "unchanged": result.unchanged}
