"""A statement document as XLSX (openpyxl), laid out from
:class:`~server.money.documents.content.StatementDocument`.

Figures are number cells holding the exact decimal text (openpyxl writes a ``Decimal``
as its digits), formatted to show every stored decimal, so a spreadsheet sums them
as the ledger did; labels are in the document's language; the QR code is an image
beside the heading.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final

from openpyxl import Workbook
from openpyxl.drawing.image import Image
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet

from server.money.documents.content import NOT_RECORDED, StatementDocument, qr

BOLD: Final = Font(bold=True)
COLUMN_WIDTHS: Final = (22, 26, 18, 10, 16, 16, 16, 12, 10, 16, 18)


def exact_format(value: Decimal) -> str:
    """A number format showing every decimal ``value`` has (tonnes keep 6 places)."""
    places = max(0, -int(value.as_tuple().exponent))
    return "#,##0" + ("." + "0" * places if places else "")


def append_row(ws: Worksheet, values: Sequence[Any], *, bold: bool = False) -> None:
    """Append ``values``: decimals shown in full, and text kept text — openpyxl would
    store a name such as ``=HYPERLINK(…)`` as a formula for the spreadsheet to run."""
    ws.append(list(values))
    r = ws._current_row  # the row just appended; ws.max_row scans every cell (quadratic)
    for i, value in enumerate(values, start=1):
        if value is None:
            continue
        cell = ws.cell(r, i)
        if bold:
            cell.font = BOLD
        if isinstance(value, Decimal):
            cell.number_format = exact_format(value)
        elif isinstance(value, str) and value.startswith("="):
            cell.data_type = "s"


def statement_workbook(doc: StatementDocument) -> Workbook:
    lb = doc.labels
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = f"{doc.statement_id}"[:31]
    for i, w in enumerate(COLUMN_WIDTHS):
        ws.column_dimensions[chr(ord("A") + i)].width = w
    ws.append([doc.title])
    ws["A1"].font = Font(bold=True, size=14)
    for label, value in doc.facts():
        append_row(ws, [label, value])
    if doc.note:
        append_row(ws, [doc.note])
    png = io.BytesIO()
    qr(doc.check_url).save(png, kind="png", scale=3, border=4)
    png.seek(0)
    ws.add_image(Image(png), "L1")

    append_row(ws, [])
    append_row(ws, [lb("doc.lines")], bold=True)
    header = doc.line_header()
    append_row(ws, [*header[:8], lb("doc.rate_unit"), *header[8:]], bold=True)
    for ln in doc.lines:
        append_row(
            ws,
            [
                ln.contract,
                ln.category,
                ln.stage,
                ln.tickets,
                ln.tonnes,
                NOT_RECORDED if ln.device_tonnes is None else ln.device_tonnes,
                NOT_RECORDED if ln.manual_tonnes is None else ln.manual_tonnes,
                ln.rate,
                ln.rate_unit,
                ln.rate_kzt_per_t,
                ln.amount_kzt,
            ],
        )
    append_row(
        ws,
        [
            lb("doc.total"),
            None,
            None,
            None,
            doc.total_tonnes,
            doc.total_device_tonnes,
            doc.total_manual_tonnes,
            None,
            None,
            None,
            doc.total_kzt,
        ],
        bold=True,
    )

    append_row(ws, [])
    append_row(ws, [lb("doc.totals")], bold=True)
    for label, figure in doc.totals():
        append_row(ws, [label, figure])

    append_row(ws, [])
    append_row(ws, [lb("doc.over_cap")], bold=True)
    if doc.over_cap:
        append_row(ws, doc.over_cap_header(), bold=True)
        for u in doc.over_cap:
            append_row(ws, [u.contract, u.category, u.stage, u.reason, u.tonnes])
    else:
        append_row(ws, [lb("doc.none")])

    append_row(ws, [])
    append_row(ws, [lb("doc.held")], bold=True)
    if doc.held:
        append_row(ws, doc.held_header(), bold=True)
        for h in doc.held:
            append_row(ws, [h.ticket, h.weighed_at, h.site, h.category, h.tonnes, h.reasons])
    else:
        append_row(ws, [lb("doc.none")])

    append_row(ws, [])
    append_row(ws, [lb("doc.history")], bold=True)
    for label, value in doc.history():
        append_row(ws, [label, value])
    append_row(ws, [])
    append_row(ws, [lb("doc.sha256"), doc.sha256])
    append_row(ws, [lb("doc.check"), doc.check_url])
    return wb


def statement_xlsx(doc: StatementDocument) -> bytes:
    """The XLSX of a statement document."""
    out = io.BytesIO()
    statement_workbook(doc).save(out)
    return out.getvalue()
