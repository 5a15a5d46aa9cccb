"""Pages for documents: the public check of a document's hash, and the month's payment
register for staff (downloads, contractors' bank accounts, marking paid from the
register brought back from the bank).

``/check/{hash}`` needs no login and says only whether a statement with that hash
exists and its status; an unknown hash and a malformed one get the same "not found"
page, word for word. The register's acts call :mod:`server.money.bank` and
:mod:`server.money.documents.register` as the signed-in operator (the ``pay``
permission and the four-eyes rule are checked there, as for every other payment).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response

from server.api.deps import ActorDep, OperatorDep, SessionDep, StaffDep, check_period
from server.money.bank import BankError
from server.money.bank import set_account as set_bank_account
from server.money.documents.check import status_of
from server.money.documents.register import (
    MAX_BYTES,
    RegisterError,
    build_register,
    mark_paid,
    read_payments,
)
from server.people.permissions import PermissionDenied
from server.web.render import PageDep
from server.web.routes.contractors import this_month
from server.web.uploads import read_upload, upload_name

router = APIRouter(include_in_schema=False)


@router.get("/check/{sha256:path}")  # any text, slashes too: one "not found" page
def check_page(page: PageDep, session: SessionDep, sha256: str) -> Response:
    status = status_of(session, sha256)
    if status is None:
        return page.render("documents/check.html", status=404, found=False, state=None, sha="")
    return page.render("documents/check.html", found=True, state=status, sha=sha256)


def _register_page(
    page: PageDep, session: SessionDep, period: str, paid: bool, outcomes: object = None
) -> Response:
    register = build_register(session, period, include_paid=paid)
    return page.render(
        "documents/register.html",
        period=period,
        paid=paid,
        register=register,
        outcomes=outcomes,
    )


@router.get("/register")
def register_page(
    page: PageDep,
    session: SessionDep,
    _: StaffDep,
    period: str = Query("", pattern=r"^(\d{4}-\d{2})?$"),
    paid: bool = False,
) -> Response:
    period = period or this_month()
    check_period(period)
    return _register_page(page, session, period, paid)


@router.post("/register/bank")
def set_bank(
    page: PageDep,
    session: SessionDep,
    _: OperatorDep,
    actor: ActorDep,
    contractor_bin: Annotated[str, Form(max_length=12)] = "",
    iban: Annotated[str, Form(max_length=60)] = "",
    bic: Annotated[str, Form(max_length=20)] = "",
    bank_name: Annotated[str, Form(max_length=200)] = "",
    period: Annotated[str, Form(max_length=7)] = "",
) -> Response:
    target = f"/register?period={period}" if period else "/register"
    return page.act(
        session,
        target,
        lambda: set_bank_account(
            session, contractor_bin, iban=iban, bic=bic, bank_name=bank_name, actor=actor
        ),
        (BankError, PermissionDenied),
        lambda account: page.t(
            "docs.bank_set", contractor=account.contractor_bin, iban=account.iban
        ),
    )


@router.post("/register/mark-paid")
def mark_paid_page(
    page: PageDep,
    session: SessionDep,
    _: OperatorDep,
    actor: ActorDep,
    file: Annotated[UploadFile, File()],
    period: Annotated[str, Form(max_length=7)] = "",
) -> Response:
    period = period or this_month()
    check_period(period)
    data = read_upload(file, MAX_BYTES)
    name = upload_name(file, max_length=100)
    try:
        payments = read_payments(data, name)
    except RegisterError as exc:
        return page.refuse(f"/register?period={period}", exc)
    factory = page.request.app.state.sessions
    outcomes = mark_paid(factory, payments, actor=actor)
    session.expire_all()  # the rows were paid in their own transactions
    return _register_page(page, session, period, True, outcomes)
