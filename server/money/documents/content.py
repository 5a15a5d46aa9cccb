"""What a statement document says: every figure both formats print, read once from
the stored statement.

:func:`statement_document` turns a stored statement (its frozen body and its workflow
columns) into a :class:`StatementDocument` of labelled, exact values; the PDF and XLSX
writers only lay it out, so a figure cannot differ between the two formats or from the
ledger. Numbers are printed in full (tonnes with every stored decimal, amounts to the
tiyn) in the language's convention: ``1,320,060.00`` in English, ``1 320 060,00`` (a
no-break space groups thousands) in Kazakh and Russian.

The QR code carries :func:`check_url`, the public page that says whether a document with
that hash exists and its status, nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

import segno

from server.ledger.accounting import StoredStatement
from server.money.amounts import LOCAL_TZ
from server.money.documents.catalog import Labels

NBSP: Final = "\u00a0"
NOT_RECORDED: Final = "—"
"""A figure the stored body does not hold (a device/manual split of a format 1 body)."""
#: QR error correction: M survives a crease or a stamp over a corner of the code.
QR_ERROR: Final = "m"


def number(value: Decimal, lang: str) -> str:
    """``value`` exactly (every decimal it has), grouped for ``lang``."""
    text = format(value, "f")
    sign = "-" if text.startswith("-") else ""
    whole, _, frac = text.lstrip("-").partition(".")
    groups: list[str] = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    sep, point = (",", ".") if lang == "en" else (NBSP, ",")
    return sign + sep.join(groups) + (point + frac if frac else "")


def parse_number(text: str) -> Decimal:
    """The inverse of :func:`number` for any of the three languages."""
    t = text.replace(NBSP, "").replace(" ", "").replace("\u202f", "")
    t = t.replace(",", "") if "," in t and "." in t else t.replace(",", ".")
    return Decimal(t)


def local_time(at: datetime) -> str:
    """A moment as local time with its offset and zone, e.g.
    ``2026-03-05 10:00:00 UTC+05:00 (Asia/Almaty)``."""
    local = at.astimezone(LOCAL_TZ)
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M:%S} UTC{offset[:3]}:{offset[3:]} ({LOCAL_TZ.key})"


def check_url(base_url: str, sha256: str) -> str:
    """The public check page of the document with this hash."""
    return f"{base_url.rstrip('/')}/check/{sha256}"


def qr(url: str) -> segno.QRCode:
    """The QR code printed on a document (always a full QR code, never a micro one)."""
    return segno.make(url, error=QR_ERROR, micro=False)


@dataclass(frozen=True, slots=True)
class Line:
    contract: str
    """``EPR-T01 v1``."""
    category: str
    stage: str
    tickets: int
    tonnes: Decimal
    rate: Decimal | None
    """As the contract states it, in ``rate_unit``; None if unknown (a delta line whose
    contract left the recomputation)."""
    rate_unit: str
    rate_kzt_per_t: Decimal | None
    amount_kzt: Decimal
    device_tonnes: Decimal | None = None
    """Of ``tonnes``, those on device evidence; None in a body that does not record
    the split (format 1): printed as "—"."""
    manual_tonnes: Decimal | None = None
    """Of ``tonnes``, those on manual tickets; None as for ``device_tonnes``."""


@dataclass(frozen=True, slots=True)
class OverCap:
    contract: str
    category: str
    stage: str
    reason: str
    tonnes: Decimal


@dataclass(frozen=True, slots=True)
class Held:
    ticket: str
    weighed_at: str
    site: str
    category: str
    tonnes: Decimal
    reasons: str


@dataclass(frozen=True, slots=True)
class Step:
    label: str
    who: str
    at: str


@dataclass(frozen=True, slots=True)
class StatementDocument:
    """Everything a statement document prints, labelled in ``lang``."""

    lang: str
    labels: Labels
    statement_id: int
    title: str
    kind: str
    status: str
    period: str
    contractor_bin: str
    contractor_name: str
    note: str
    lines: tuple[Line, ...]
    over_cap: tuple[OverCap, ...]
    held: tuple[Held, ...]
    total_tonnes: Decimal
    total_kzt: Decimal
    held_tonnes: Decimal
    over_cap_tonnes: Decimal
    steps: tuple[Step, ...]
    payment_ref: str
    sha256: str
    check_url: str

    def num(self, value: Decimal) -> str:
        return number(value, self.lang)

    @property
    def total_device_tonnes(self) -> Decimal | None:
        """The lines' device tonnes added up; None when a line does not record them."""
        figures = [ln.device_tonnes for ln in self.lines]
        if not figures or any(f is None for f in figures):
            return None
        return sum((f for f in figures if f is not None), Decimal(0))

    @property
    def total_manual_tonnes(self) -> Decimal | None:
        """The lines' manual tonnes added up; None when a line does not record them."""
        figures = [ln.manual_tonnes for ln in self.lines]
        if not figures or any(f is None for f in figures):
            return None
        return sum((f for f in figures if f is not None), Decimal(0))

    def facts(self) -> list[tuple[str, str]]:
        """The heading block: label, value."""
        lb = self.labels
        return [
            (lb("doc.contractor"), self.contractor_name),
            (lb("doc.bin"), self.contractor_bin),
            (lb("doc.period"), self.period),
            (lb("doc.kind"), self.kind),
            (lb("doc.status"), self.status),
        ]

    def line_header(self) -> list[str]:
        lb = self.labels
        return [
            lb("doc.contract"),
            lb("doc.category"),
            lb("doc.stage"),
            lb("doc.tickets"),
            lb("doc.tonnes"),
            lb("doc.device_tonnes"),
            lb("doc.manual_tonnes"),
            lb("doc.rate"),
            lb("doc.rate_kzt"),
            lb("doc.amount"),
        ]

    def line_cells(self, ln: Line) -> list[str]:
        return [
            ln.contract,
            ln.category,
            ln.stage,
            str(ln.tickets),
            self.num(ln.tonnes),
            NOT_RECORDED if ln.device_tonnes is None else self.num(ln.device_tonnes),
            NOT_RECORDED if ln.manual_tonnes is None else self.num(ln.manual_tonnes),
            "" if ln.rate is None else f"{self.num(ln.rate)} {ln.rate_unit}",
            "" if ln.rate_kzt_per_t is None else self.num(ln.rate_kzt_per_t),
            self.num(ln.amount_kzt),
        ]

    def over_cap_header(self) -> list[str]:
        lb = self.labels
        return [
            lb("doc.contract"),
            lb("doc.category"),
            lb("doc.stage"),
            lb("doc.reason"),
            lb("doc.tonnes"),
        ]

    def over_cap_cells(self, u: OverCap) -> list[str]:
        return [u.contract, u.category, u.stage, u.reason, self.num(u.tonnes)]

    def held_header(self) -> list[str]:
        lb = self.labels
        return [
            lb("doc.ticket"),
            lb("doc.weighed_at"),
            lb("doc.site"),
            lb("doc.category"),
            lb("doc.tonnes"),
            lb("doc.reason"),
        ]

    def held_cells(self, h: Held) -> list[str]:
        return [h.ticket, h.weighed_at, h.site, h.category, self.num(h.tonnes), h.reasons]

    def totals(self) -> list[tuple[str, Decimal]]:
        lb = self.labels
        return [
            (lb("doc.total_tonnes"), self.total_tonnes),
            (lb("doc.total_kzt"), self.total_kzt),
            (lb("doc.over_cap_tonnes"), self.over_cap_tonnes),
            (lb("doc.held_tonnes"), self.held_tonnes),
        ]

    def history(self) -> list[tuple[str, str]]:
        out = [(s.label, f"{s.who}, {s.at}") for s in self.steps]
        if self.payment_ref:
            out.append((self.labels("doc.payment_ref"), self.payment_ref))
        return out


def _contract(contract_id: str | None, version: int | None = None) -> str:
    if contract_id is None:
        return "—"
    return contract_id if version is None else f"{contract_id} v{version}"


def _optional(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def statement_document(row: StoredStatement, *, lang: str, base_url: str) -> StatementDocument:
    """The document of a stored statement, in ``lang`` (``kk``, ``ru`` or ``en``)."""
    lb = Labels(lang)
    body = json.loads(row.body)
    shown = body if row.kind == "original" else body["recomputed"]
    by_key = {(ln["contract_id"], int(ln["version"]), ln["stage"]): ln for ln in shown["lines"]}
    lines = []
    for ln in body["lines"]:
        full = by_key.get((ln["contract_id"], int(ln["version"]), ln["stage"]))
        lines.append(
            Line(
                contract=_contract(ln["contract_id"], int(ln["version"])),
                category=lb.of("category", full["category"]) if full else "",
                stage=lb.of("stage", ln["stage"]),
                tickets=int(ln["tickets"]),
                tonnes=Decimal(ln["tonnes"]),
                rate=Decimal(full["rate"]) if full else None,
                rate_unit=full["rate_unit"] if full else "",
                rate_kzt_per_t=Decimal(full["rate_kzt_per_t"]) if full else None,
                amount_kzt=Decimal(ln["amount_kzt"]),
                device_tonnes=_optional(ln.get("device_tonnes")),
                manual_tonnes=_optional(ln.get("manual_tonnes")),
            )
        )
    over = tuple(
        OverCap(
            _contract(u["contract_id"]),
            lb.of("category", u["category"]),
            lb.of("stage", u["stage"]),
            lb.of("portion", u["reason"]),
            Decimal(u["tonnes"]),
        )
        for u in shown["over_cap"]
    )
    held = tuple(
        Held(
            f"{h['device_id']}:{h['seq']}",
            local_time(datetime.fromisoformat(h["weighed_at"])),
            h["site_id"],
            lb.of("category", h["category"]),
            Decimal(h["tonnes"]),
            "; ".join(
                f"{lb.of('hold', r['reason'])} ({lb.of('hold_status', r['status'])})"
                for r in h["reasons"]
            ),
        )
        for h in shown.get("held", ())
    )
    steps = [Step(lb("doc.computed"), row.computed_by or "—", local_time(row.computed_at))]
    if row.approved_at is not None:
        steps.append(Step(lb("doc.approved"), row.approved_by or "—", local_time(row.approved_at)))
    if row.paid_at is not None:
        steps.append(Step(lb("doc.paid"), row.paid_by or "—", local_time(row.paid_at)))
    if row.kind == "original":
        title, note = lb("doc.title", id=row.id), ""
    else:
        title = lb("doc.adjustment_title", id=row.id, original=row.adjusts_id)
        note = lb("doc.delta_note")
    return StatementDocument(
        lang=lang,
        labels=lb,
        statement_id=row.id,
        title=title,
        kind=lb.of("statement_kind", row.kind),
        status=lb.of("statement_status", row.status),
        period=row.period,
        contractor_bin=row.contractor_bin,
        contractor_name=body["contractor_name"],
        note=note,
        lines=tuple(lines),
        over_cap=over,
        held=held,
        total_tonnes=(
            Decimal(body["total_tonnes"])
            if row.kind == "original"
            else sum((ln.tonnes for ln in lines), Decimal(0))
        ),
        total_kzt=row.total_kzt,
        held_tonnes=sum((h.tonnes for h in held), Decimal(0)),
        over_cap_tonnes=sum((u.tonnes for u in over), Decimal(0)),
        steps=tuple(steps),
        payment_ref=row.payment_ref or "",
        sha256=row.sha256,
        check_url=check_url(base_url, row.sha256),
    )
