"""Manual tickets (operators enter, staff read): a weighbridge export uploaded, or a
paper ticket typed in with its scan or photo; the scans served back to staff.

Both forms call :mod:`server.money.manual`, as the command line does, under the
signed-in operator's name. A refused file or form changes nothing and shows every
problem on the page itself (422): a list of problems does not fit a one-shot message.
A request declaring more than :data:`MAX_UPLOAD_BYTES` is refused before its body is
read (``server.web.limits``); within that, a file is read only up to its own limit
plus one byte.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import Response

from server.api.deps import OperatorDep, SessionDep, StaffDep
from server.money import manual
from server.web import flash
from server.web.render import Page, PageDep
from server.web.uploads import read_upload, upload_name

router = APIRouter(include_in_schema=False)

MAX_EXPORT_BYTES: Final = 20 * 1024 * 1024
"""A month of a weighbridge's tickets is far smaller."""
MAX_UPLOAD_BYTES: Final = MAX_EXPORT_BYTES + 1024 * 1024
"""What a request to these forms may declare at all (``server.web.limits``): the
largest file plus room for the other fields."""
PATH: Final = "/manual-tickets"


def _page(page: Page, session: SessionDep, problems: list[str] | None = None) -> Response:
    return page.render(
        "tickets/manual.html",
        status=422 if problems else 200,
        problems=problems or [],
        recent=manual.list_manual(session),
        sites=manual.site_ids(session),
        max_mb=manual.MAX_ATTACHMENT_BYTES // (1024 * 1024),
    )


@router.get(PATH)
def manual_page(page: PageDep, session: SessionDep, user: StaffDep) -> Response:
    return _page(page, session)


@router.post(PATH + "/import")
def import_export(
    page: PageDep,
    session: SessionDep,
    user: OperatorDep,
    file: Annotated[UploadFile, File()],
    site: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    name = upload_name(file)
    data = read_upload(file, MAX_EXPORT_BYTES)
    try:
        if len(data) > MAX_EXPORT_BYTES:
            raise manual.ManualProblems(
                [f"{name}: more than {MAX_EXPORT_BYTES // (1024 * 1024)} MB"]
            )
        result = manual.import_export(session, data, name, site=site or None, actor=user.username)
        session.commit()
    except manual.ManualProblems as exc:
        session.rollback()
        return _page(page, session, exc.problems)
    text = page.t(
        "manual.imported", file=name, created=len(result.created), unchanged=result.unchanged
    )
    return flash.redirect(page.request, PATH, "ok", text)


@router.post(PATH + "/paper")
def enter_paper(
    page: PageDep,
    session: SessionDep,
    user: OperatorDep,
    scan: Annotated[UploadFile, File()],
    site: Annotated[str, Form(max_length=64)] = "",
    ticket_no: Annotated[str, Form(max_length=200)] = "",
    weighed_at: Annotated[str, Form(max_length=100)] = "",
    category: Annotated[str, Form(max_length=100)] = "",
    gross_kg: Annotated[str, Form(max_length=40)] = "",
    tare_kg: Annotated[str, Form(max_length=40)] = "",
    net_kg: Annotated[str, Form(max_length=40)] = "",
    vehicle_plate: Annotated[str, Form(max_length=100)] = "",
    contractor_bin: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    fields = {
        "ticket_no": ticket_no,
        "weighed_at": weighed_at.replace("T", " "),  # datetime-local sends 2026-03-02T09:15
        "category": category,
        "gross_kg": gross_kg,
        "tare_kg": tare_kg,
        "net_kg": net_kg,
        "vehicle_plate": vehicle_plate,
        "contractor_bin": contractor_bin,
    }
    data = read_upload(scan, manual.MAX_ATTACHMENT_BYTES)
    try:
        result = manual.enter_paper(
            session,
            fields,
            site=site,
            scan=data,
            scan_name=scan.filename or "",
            actor=user.username,
        )
        session.commit()
    except manual.ManualProblems as exc:
        session.rollback()
        return _page(page, session, exc.problems)
    key = "manual.entered" if result.created else "manual.already"
    return flash.redirect(page.request, PATH, "ok", page.t(key, ticket=ticket_no.strip()))


@router.get(PATH + "/attachments/{sha256}")
def attachment(session: SessionDep, user: StaffDep, sha256: str) -> Response:
    found = manual.attachment(session, sha256)
    if found is None:
        return Response("not found", status_code=404, media_type="text/plain")
    ext = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}[found.media_type]
    return Response(
        found.content,
        media_type=found.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{found.sha256[:16]}.{ext}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=3600",
        },
    )
