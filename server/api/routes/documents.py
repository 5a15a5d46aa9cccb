"""Documents: a stored statement as PDF or XLSX, and the month's payment register.

A statement's document has the statement JSON's access rule: staff any, a contractor
only its own (another's, or a missing one, is the same 404). The register lists every
contractor's bank account and amount: staff only. ``lang`` is ``kk``, ``ru`` or ``en``
(default: the server's page language).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from server.api.deps import (
    ContractorScope,
    RowId,
    SessionDep,
    StaffDep,
    check_period,
    documented,
)
from server.ledger.accounting import StoredStatement
from server.money.documents import FORMATS, filename, render_statement
from server.money.documents.register import build_register, register_csv, register_xlsx

router = APIRouter(prefix="/api/v1", tags=["documents"])

Lang = Literal["kk", "ru", "en"]


def _lang(request: Request, lang: Lang | None) -> str:
    if lang is not None:
        return lang
    default: str = request.app.state.settings.web_default_language
    return default


def _download(data: bytes, media_type: str, name: str) -> Response:
    return Response(
        data,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


def statement_file(
    request: Request,
    session: SessionDep,
    scope: ContractorScope,
    statement_id: int,
    fmt: str,
    lang: str,
) -> Response:
    """The statement's document, if the caller may see the statement (else 404)."""
    row = session.get(StoredStatement, statement_id)
    scope.visible(row.contractor_bin if row else None, f"statement {statement_id}")
    assert row is not None
    base_url: str = request.app.state.settings.public_url
    data = render_statement(row, fmt=fmt, lang=lang, base_url=base_url)
    return _download(data, FORMATS[fmt], filename(row, fmt, lang))


def _statement_route(fmt: str) -> Callable[..., Response]:
    """The download route of one format: ``/statements/{id}.{fmt}``."""

    def route(
        request: Request,
        session: SessionDep,
        scope: ContractorScope,
        statement_id: RowId,
        lang: Lang | None = None,
    ) -> Response:
        return statement_file(request, session, scope, statement_id, fmt, _lang(request, lang))

    route.__name__ = route.__qualname__ = f"statement_{fmt}"
    return route


for _fmt in ("pdf", "xlsx"):
    router.get(f"/statements/{{statement_id:int}}.{_fmt}", responses=documented(404))(
        _statement_route(_fmt)
    )


@router.get("/register/{period}.xlsx")
def register_as_xlsx(
    request: Request,
    session: SessionDep,
    _: StaffDep,
    period: str,
    lang: Lang | None = None,
    paid: bool = Query(False, description="also list statements already paid"),
) -> Response:
    check_period(period)
    data = register_xlsx(
        build_register(session, period, include_paid=paid), lang=_lang(request, lang)
    )
    return _download(data, FORMATS["xlsx"], f"register-{period}.xlsx")


@router.get("/register/{period}.csv")
def register_as_csv(
    session: SessionDep,
    _: StaffDep,
    period: str,
    excel: bool = Query(False, description="BOM, ';' and a decimal comma (ru/kk Excel)"),
    paid: bool = Query(False, description="also list statements already paid"),
) -> Response:
    check_period(period)
    data = register_csv(build_register(session, period, include_paid=paid), excel=excel)
    return _download(data, "text/csv; charset=utf-8", f"register-{period}.csv")
