"""Documents made from the ledger: a stored statement as PDF or XLSX in Kazakh, Russian
or English (``content`` holds the figures both formats print, ``statement_pdf`` and
``statement_xlsx`` lay them out, ``catalog`` holds the labels), the public check of a
document's hash (``check``), and the month's payment register (``register``)."""

from __future__ import annotations

from typing import Final

from server.ledger.accounting import StoredStatement
from server.money.documents.catalog import LANGUAGES
from server.money.documents.content import statement_document
from server.money.documents.statement_pdf import statement_pdf
from server.money.documents.statement_xlsx import statement_xlsx

FORMATS: Final = {
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

__all__ = ["FORMATS", "LANGUAGES", "DocumentError", "filename", "render_statement"]


class DocumentError(ValueError):
    """A document asked for in a format or language there is none of."""


def filename(row: StoredStatement, fmt: str, lang: str) -> str:
    return f"statement-{row.id}-{row.contractor_bin}-{row.period}-{lang}.{fmt}"


def render_statement(row: StoredStatement, *, fmt: str, lang: str, base_url: str) -> bytes:
    """A stored statement's document: ``fmt`` ``pdf`` or ``xlsx``, ``lang`` ``kk``/``ru``/``en``."""
    if fmt not in FORMATS:
        raise DocumentError(f"format {fmt!r}: one of {', '.join(FORMATS)}")
    if lang not in LANGUAGES:
        raise DocumentError(f"language {lang!r}: one of {', '.join(LANGUAGES)}")
    doc = statement_document(row, lang=lang, base_url=base_url)
    return statement_pdf(doc) if fmt == "pdf" else statement_xlsx(doc)
