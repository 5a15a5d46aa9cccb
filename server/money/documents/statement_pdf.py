"""A statement document as PDF (fpdf2), laid out from
:class:`~server.money.documents.content.StatementDocument`.

The text is set in DejaVu Sans, shipped in ``server/data/fonts`` (with its licence):
it has every Kazakh letter (ә ғ қ ң ө ұ ү һ і), so the document renders offline, the
same on every machine. A4 landscape; tables repeat their header on each new page; the
footer carries the page number and the statement's hash, so a loose page still says
which document it belongs to.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Final

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from server.money.documents.content import StatementDocument, qr

FONT: Final = "DejaVu"
FONTS: Final = files("server") / "data" / "fonts"
MARGIN: Final = 12.0
QR_MM: Final = 34.0
ROW_H: Final = 5.0
BODY_PT: Final = 8.0
SMALLEST_PT: Final = 5.0

LINE_WIDTHS: Final = (32.0, 34.0, 28.0, 14.0, 28.0, 26.0, 26.0, 26.0, 26.0, 33.0)
LINE_RIGHT: Final = (False, False, False, True, True, True, True, True, True, True)
OVER_WIDTHS: Final = (60.0, 60.0, 50.0, 60.0, 43.0)
OVER_RIGHT: Final = (False, False, False, False, True)
HELD_WIDTHS: Final = (40.0, 62.0, 36.0, 40.0, 25.0, 70.0)
HELD_RIGHT: Final = (False, False, False, False, True, False)


class _Pdf(FPDF):
    def __init__(self, footer_text: str) -> None:
        super().__init__(orientation="L", unit="mm", format="A4")
        self.footer_text = footer_text

    def footer(self) -> None:
        self.set_y(-10)
        self.set_font(FONT, "", 7)
        self.cell(0, 4, f"{self.footer_text} · {self.page_no()}/{{nb}}", align="R")


def _fonts(pdf: FPDF) -> None:
    for style, name in (("", "DejaVuSans.ttf"), ("B", "DejaVuSans-Bold.ttf")):
        pdf.add_font(FONT, style, str(Path(str(FONTS / name))))  # files of the installed package


def _cell(pdf: FPDF, w: float, text: str, *, right: bool = False, bold: bool = False) -> None:
    """One table cell; a text too wide for it is set smaller rather than cut."""
    style = "B" if bold else ""
    size = BODY_PT
    pdf.set_font(FONT, style, size)
    while size > SMALLEST_PT and pdf.get_string_width(text) > w - 2 * pdf.c_margin:
        size -= 0.5
        pdf.set_font(FONT, style, size)
    pdf.cell(w, ROW_H, text, border=1, align="R" if right else "L")
    if size != BODY_PT:
        pdf.set_font(FONT, style, BODY_PT)


def _table(
    pdf: FPDF,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    widths: Sequence[float],
    right: Sequence[bool],
) -> None:
    def head() -> None:
        pdf.set_fill_color(235, 235, 235)
        for text, w in zip(header, widths, strict=True):
            _cell(pdf, w, text, bold=True)
        pdf.ln(ROW_H)

    head()
    for row in rows:
        if pdf.get_y() + ROW_H > pdf.page_break_trigger:
            pdf.add_page()
            head()
        for text, w, r in zip(row, widths, right, strict=True):
            _cell(pdf, w, text, right=r)
        pdf.ln(ROW_H)


def _table_or_none(
    pdf: FPDF,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    widths: Sequence[float],
    right: Sequence[bool],
    none: str,
) -> None:
    """The rows as a table, or ``none`` written out where there are none."""
    if rows:
        _table(pdf, header, rows, widths, right)
    else:
        pdf.set_font(FONT, "", BODY_PT)
        pdf.cell(0, ROW_H, none, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _heading(pdf: FPDF, text: str) -> None:
    if pdf.get_y() + 3 * ROW_H > pdf.page_break_trigger:
        pdf.add_page()
    pdf.ln(3)
    pdf.set_font(FONT, "B", 10)
    pdf.cell(0, 6, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _pairs(pdf: FPDF, pairs: Sequence[tuple[str, str]], label_w: float = 55.0) -> None:
    for label, value in pairs:
        pdf.set_font(FONT, "B", BODY_PT)
        pdf.cell(label_w, ROW_H, label)
        pdf.set_font(FONT, "", BODY_PT)
        pdf.multi_cell(0, ROW_H, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def statement_pdf(doc: StatementDocument) -> bytes:
    """The PDF of a statement document."""
    lb = doc.labels
    pdf = _Pdf(f"{doc.title} · SHA-256 {doc.sha256}")
    pdf.set_creation_date(datetime(2000, 1, 1, tzinfo=UTC))  # same bytes for the same statement
    pdf.set_title(doc.title)
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.c_margin = 2.0  # cells wide apart enough that a text extractor keeps them apart
    pdf.set_auto_page_break(True, margin=14)
    _fonts(pdf)
    pdf.add_page()

    page_w = pdf.w - 2 * MARGIN
    png = io.BytesIO()
    qr(doc.check_url).save(png, kind="png", scale=4, border=4)
    png.seek(0)
    pdf.image(png, x=pdf.w - MARGIN - QR_MM, y=MARGIN, w=QR_MM, h=QR_MM)
    pdf.set_font(FONT, "B", 14)
    pdf.multi_cell(page_w - QR_MM - 4, 8, doc.title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_right_margin(MARGIN + QR_MM + 4)
    _pairs(pdf, doc.facts())
    if doc.note:
        pdf.set_font(FONT, "", BODY_PT)
        pdf.multi_cell(0, ROW_H, doc.note, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_right_margin(MARGIN)
    pdf.set_y(max(pdf.get_y(), MARGIN + QR_MM + 2))

    _heading(pdf, lb("doc.lines"))
    rows = [doc.line_cells(ln) for ln in doc.lines]
    total_row = [
        lb("doc.total"),
        "",
        "",
        "",
        doc.num(doc.total_tonnes),
        doc.num(doc.total_device_tonnes) if doc.total_device_tonnes is not None else "",
        doc.num(doc.total_manual_tonnes) if doc.total_manual_tonnes is not None else "",
        "",
        "",
        doc.num(doc.total_kzt),
    ]
    _table(pdf, doc.line_header(), [*rows, total_row], LINE_WIDTHS, LINE_RIGHT)

    _heading(pdf, lb("doc.totals"))
    _pairs(pdf, [(label, doc.num(value)) for label, value in doc.totals()], label_w=70.0)

    over_cap = [doc.over_cap_cells(u) for u in doc.over_cap]
    _heading(pdf, lb("doc.over_cap"))
    _table_or_none(pdf, doc.over_cap_header(), over_cap, OVER_WIDTHS, OVER_RIGHT, lb("doc.none"))
    held = [doc.held_cells(h) for h in doc.held]
    _heading(pdf, lb("doc.held"))
    _table_or_none(pdf, doc.held_header(), held, HELD_WIDTHS, HELD_RIGHT, lb("doc.none"))

    _heading(pdf, lb("doc.history"))
    _pairs(pdf, doc.history())
    _heading(pdf, lb("doc.check"))
    _pairs(pdf, [(lb("doc.sha256"), doc.sha256), (lb("doc.check"), doc.check_url)])
    return bytes(pdf.output())
