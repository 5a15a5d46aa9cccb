"""Manual tickets: a weighbridge export imported, or a paper ticket typed in.

Reception points without a device bring their weighbridge tickets in two ways: an
export of the weighbridge's own program (CSV or XLSX, read by
:mod:`server.money.tabular`; the accepted columns are :data:`ALIASES`, documented in
``docs/payments.md`` with ``docs/examples/weighbridge-export.csv``), or one paper
ticket entered on a form with its scan or photo attached.

The rules, the same for both ways in:

* Every row is checked and every problem reported at once, as
  ``FILE:LINE:COLUMN: what is wrong, what is expected``; a file with any problem
  imports nothing.
* ``(site, ticket number)`` is the ticket's identity: entering it again with the same
  values changes nothing; with other values it is refused (a correction is a
  reversal and a new ticket number).
* Each ticket is stored in the ledger's manual namespace (:mod:`server.ledger.manual`)
  with who entered it and from what (file and line, or the form and the attachment's
  SHA-256), and is held for ``manual_evidence`` at once: it is paid only after an
  operator other than the one who entered it releases the hold with a reason.
* Text cells are identifiers with a strict alphabet: a cell that a spreadsheet would
  run as a formula (``=cmd|…``, ``+``, ``-``, ``@``) is refused, never stored.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from edge.protocol import GENESIS_HASH
from server.identifiers import bin_problem, did_you_mean
from server.ledger import audit
from server.ledger import manual as ledger
from server.ledger.models import Site, Ticket
from server.money import holds
from server.money.amounts import LOCAL_TZ
from server.money.contracts import CATEGORIES
from server.money.hold_rules import MANUAL_EVIDENCE
from server.money.tabular import Cell, Row, Table, TableProblems

#: Header spellings accepted for each column (case, spaces and underscores ignored).
ALIASES: Final = {
    "ticket number": "ticket_no",
    "ticket": "ticket_no",
    "number": "ticket_no",
    "№": "ticket_no",
    "номер": "ticket_no",
    "номер талона": "ticket_no",
    "түбіртек нөмірі": "ticket_no",
    "date/time": "weighed_at",
    "datetime": "weighed_at",
    "date time": "weighed_at",
    "дата/время": "weighed_at",
    "дата и время": "weighed_at",
    "күні/уақыты": "weighed_at",
    "site id": "site",
    "площадка": "site",
    "пункт": "site",
    "waste category": "category",
    "категория": "category",
    "санат": "category",
    "gross": "gross_kg",
    "брутто": "gross_kg",
    "брутто кг": "gross_kg",
    "tare": "tare_kg",
    "тара": "tare_kg",
    "тара кг": "tare_kg",
    "net": "net_kg",
    "нетто": "net_kg",
    "нетто кг": "net_kg",
    "vehicle plate": "vehicle_plate",
    "plate": "vehicle_plate",
    "vehicle": "vehicle_plate",
    "госномер": "vehicle_plate",
    "гос номер": "vehicle_plate",
    "көлік нөмірі": "vehicle_plate",
    "contractor bin": "contractor_bin",
    "bin": "contractor_bin",
    "бин": "contractor_bin",
    "бсн": "contractor_bin",
}
REQUIRED: Final = ("ticket_no", "weighed_at", "category")

MAX_KG: Final = Decimal("100000")
"""Above any weighbridge's capacity (the largest take 100 t): a larger weight is a typo."""
FIRST_DAY: Final = datetime(2000, 1, 1, tzinfo=UTC)
MAX_ATTACHMENT_BYTES: Final = 10 * 1024 * 1024
#: What a scan or photo may be, by its first bytes (never by its name or declared type).
MAGIC: Final = (
    (b"%PDF-", "application/pdf"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)

_TICKET_NO: Final = re.compile(
    r"^[0-9A-Za-zА-Яа-яЁёӘәҒғҚқҢңӨөҰұҮүҺһІі][0-9A-Za-zА-Яа-яЁёӘәҒғҚқҢңӨөҰұҮүҺһІі/._-]{0,63}$"
)
_PLATE: Final = re.compile(
    r"^[0-9A-Za-zА-Яа-яЁёӘәҒғҚқҢңӨөҰұҮүҺһІі][0-9A-Za-zА-Яа-яЁёӘәҒғҚқҢңӨөҰұҮүҺһІі -]{0,19}$"
)
_WEIGHT: Final = re.compile(r"^-?[0-9]{1,9}([.,][0-9]+)?$")
_FORMULA: Final = ("=", "+", "-", "@", "\t", "\r")
_FORMATS: Final = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
)


class ManualProblems(ValueError):
    """Why nothing was entered: every problem, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems) if len(problems) < 4 else f"{len(problems)} problems")
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ManualEntry:
    """One checked ticket, ready to store."""

    site_id: str
    ticket_no: str
    weighed_at: datetime
    category: str
    gross_g: int
    tare_g: int
    net_g: int
    vehicle_plate: str | None
    contractor_bin: str | None
    source: str
    """``import`` or ``form``."""
    source_name: str
    source_line: int | None
    attachment_sha256: str | None = None


@dataclass
class ManualResult:
    created: list[int] = field(default_factory=list)
    """Ticket ids of the new tickets."""
    unchanged: int = 0


@dataclass(frozen=True, slots=True)
class Known:
    """What rows are checked against: the registered sites and the reference categories."""

    sites: frozenset[str]
    categories: frozenset[str]

    @classmethod
    def load(cls, session: Session) -> Known:
        sites = frozenset(session.scalars(select(Site.site_id)))
        return cls(sites, frozenset(CATEGORIES))


# --------------------------------------------------------------------------- checks


def _text(cell: Cell) -> str:
    return cell.isoformat(sep=" ") if isinstance(cell, datetime) else cell


def _formula(value: str) -> bool:
    return value.startswith(_FORMULA)


def parse_weight(text: str) -> tuple[int | None, str | None]:
    """Grams from a weight in kg as a person writes it (``1234.5``, ``1 234,5``)."""
    compact = text.replace(" ", "").replace("\u00a0", "").replace("\u202f", "")
    if not _WEIGHT.fullmatch(compact):
        return None, f"{text!r} is not a weight in kg (digits, one , or . for decimals)"
    value = Decimal(compact.replace(",", "."))
    if value < 0:
        return None, f"{text} kg is negative"
    if value > MAX_KG:
        return None, f"{text} kg is more than any weighbridge weighs ({MAX_KG} kg)"
    grams = value * 1000
    if grams != grams.to_integral_value():
        return None, f"{text} kg is finer than a gram (3 decimals at most)"
    return int(grams), None


def parse_when(cell: Cell, now: datetime) -> tuple[datetime | None, str | None]:
    """A weighing time; without a zone it is local time (Asia/Almaty)."""
    if isinstance(cell, datetime):
        at = cell
    else:
        text = cell.strip()
        parsed: datetime | None = None
        for fmt in _FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        if parsed is None:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                return None, (
                    f"{text!r} is not a date and time (expected YYYY-MM-DD HH:MM[:SS] or"
                    " DD.MM.YYYY HH:MM[:SS], local time)"
                )
        at = parsed
    if at.tzinfo is None:
        at = at.replace(tzinfo=LOCAL_TZ)
    at = at.astimezone(UTC).replace(microsecond=0)
    if at < FIRST_DAY:
        return None, f"{_text(cell)} is before {FIRST_DAY:%Y}"
    if at > now + timedelta(days=1):
        return None, f"{_text(cell)} is in the future"
    return at, None


def check_row(
    cells: Mapping[str, Cell],
    where: str,
    known: Known,
    *,
    site: str | None,
    now: datetime,
    source: str,
    source_name: str,
    line: int | None,
) -> tuple[ManualEntry | None, list[str]]:
    """One row as a :class:`ManualEntry`, or the problems with it (``where`` prefixes
    each, then the column)."""
    problems: list[str] = []

    def bad(column: str, why: str) -> None:
        problems.append(f"{where}:{column}: {why}")

    texts = {k: _text(v).strip() for k, v in cells.items()}
    for column, value in texts.items():
        if _formula(value) and column not in ("net_kg", "gross_kg", "tare_kg", "weighed_at"):
            bad(column, f"{value[:40]!r} starts like a spreadsheet formula: not accepted")
    ticket_no = texts.get("ticket_no", "")
    if not ticket_no:
        bad("ticket_no", "missing (the weighbridge ticket's number)")
    elif not _formula(ticket_no) and not _TICKET_NO.fullmatch(ticket_no):
        bad("ticket_no", f"{ticket_no[:40]!r}: letters, digits, / . _ - only, 64 at most")
    site_id = texts.get("site") or site or ""
    if not site_id:
        bad("site", "missing (a site column, or the site the export comes from)")
    elif site is not None and texts.get("site") and texts["site"] != site:
        bad("site", f"{texts['site']!r} is not {site}, the site this file was given for")
    elif site_id not in known.sites:
        bad("site", f"{site_id[:70]!r} is not a registered site")
    elif len(site_id) > ledger.MAX_SITE_ID:
        bad("site", f"site ids of manual tickets are {ledger.MAX_SITE_ID} characters at most")
    category = texts.get("category", "")
    if not category:
        bad("category", "missing")
    elif not _formula(category) and category not in known.categories:
        bad(
            "category",
            f"{category[:40]!r} is not a known category"
            f"{did_you_mean(category, known.categories)} (expected one of"
            f" {', '.join(sorted(known.categories))})",
        )
    weighed_at: datetime | None = None
    if "weighed_at" not in cells:
        bad("weighed_at", "missing (date and time of the weighing)")
    else:
        weighed_at, why = parse_when(cells["weighed_at"], now)
        if why:
            bad("weighed_at", why)
    grams: dict[str, int] = {}
    for column in ("gross_kg", "tare_kg", "net_kg"):
        if column in texts:
            g, why = parse_weight(texts[column])
            if why:
                bad(column, why)
            elif g is not None:
                grams[column] = g
    gross, tare, net = grams.get("gross_kg"), grams.get("tare_kg"), grams.get("net_kg")
    if not any(c in texts for c in ("gross_kg", "tare_kg", "net_kg")):
        bad("net_kg", "missing (net kg, or gross and tare kg)")
    elif len(grams) == sum(c in texts for c in ("gross_kg", "tare_kg", "net_kg")):
        if net is None:
            if gross is None or tare is None:
                bad("net_kg", "missing (net kg, or both gross and tare kg)")
            else:
                net = gross - tare
        if gross is None:
            gross = (net or 0) + (tare or 0)
        if tare is None:
            tare = gross - (net or 0)
        if net is not None and net <= 0:
            bad("net_kg", "the net weight must be above 0 kg")
        elif net is not None and tare < 0:
            if "tare_kg" in texts:
                bad("tare_kg", "tare above gross")
            else:
                bad("net_kg", "net above gross")
        elif net is not None and gross - tare != net:
            bad(
                "net_kg",
                f"net {Decimal(net) / 1000} kg is not gross − tare"
                f" ({Decimal(gross - tare) / 1000} kg)",
            )
    plate = texts.get("vehicle_plate") or None
    if plate is not None and not _formula(plate) and not _PLATE.fullmatch(plate):
        bad("vehicle_plate", f"{plate[:40]!r}: letters, digits, spaces and - only, 20 at most")
    contractor_bin = texts.get("contractor_bin") or None
    if contractor_bin is not None and not _formula(contractor_bin):
        why = bin_problem(contractor_bin)
        if why:
            bad("contractor_bin", why)
    if problems or weighed_at is None or net is None or gross is None or tare is None:
        return None, problems
    return (
        ManualEntry(
            site_id=site_id,
            ticket_no=ticket_no,
            weighed_at=weighed_at,
            category=category,
            gross_g=gross,
            tare_g=tare,
            net_g=net,
            vehicle_plate=plate,
            contractor_bin=contractor_bin,
            source=source,
            source_name=source_name,
            source_line=line,
        ),
        [],
    )


def check_table(
    table: Table, known: Known, *, site: str | None, now: datetime | None = None
) -> list[ManualEntry]:
    """Every row of an export as entries, or :class:`ManualProblems` with every problem."""
    now = now or datetime.now(UTC)
    problems: list[str] = []
    entries: list[ManualEntry] = []
    seen: dict[tuple[str, str], int] = {}
    if not table.rows:
        raise ManualProblems([f"{table.name}: no ticket rows"])
    for row in table.rows:
        entry, found = _check(row, table.name, known, site, now)
        problems += found
        if entry is None:
            continue
        key = (entry.site_id, entry.ticket_no)
        if key in seen:
            problems.append(
                f"{table.name}:{row.line}:ticket_no: {entry.ticket_no} repeats line {seen[key]}"
            )
            continue
        seen[key] = row.line
        entries.append(entry)
    if problems:
        raise ManualProblems(problems)
    return entries


def _check(
    row: Row, name: str, known: Known, site: str | None, now: datetime
) -> tuple[ManualEntry | None, list[str]]:
    return check_row(
        row.cells,
        f"{name}:{row.line}",
        known,
        site=site,
        now=now,
        source="import",
        source_name=name.replace("\\", "/").rsplit("/", 1)[-1][:300],
        line=row.line,
    )


def read_export(data: bytes, name: str) -> Table:
    """An export's rows (see :mod:`server.money.tabular`); problems as ManualProblems."""
    from server.money.tabular import read_table

    try:
        return read_table(data, name, aliases=ALIASES, required=REQUIRED)
    except TableProblems as exc:
        raise ManualProblems(exc.problems) from None


# --------------------------------------------------------------------------- attachments


def sniff(data: bytes) -> str | None:
    """The media type ``data`` is by its first bytes: PDF, JPEG or PNG; else None."""
    return next((kind for magic, kind in MAGIC if data.startswith(magic)), None)


def store_attachment(session: Session, data: bytes, name: str, *, actor: str, now: datetime) -> str:
    """Check and store a scan or photo once under its SHA-256; the hash."""
    if not data:
        raise ManualProblems([f"{name or 'attachment'}: empty file (attach the scan or photo)"])
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise ManualProblems(
            [
                f"{name}: {len(data)} bytes, more than the"
                f" {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB allowed"
            ]
        )
    media_type = sniff(data)
    if media_type is None:
        raise ManualProblems([f"{name}: not a PDF, JPEG or PNG file (by its content)"])
    digest = hashlib.sha256(data).hexdigest()
    if session.get(ledger.ManualAttachment, digest) is None:
        session.add(
            ledger.ManualAttachment(
                sha256=digest,
                media_type=media_type,
                size=len(data),
                content=data,
                stored_by=actor[:100],
                stored_at=now,
            )
        )
        session.flush()
    return digest


def attachment(session: Session, sha256: str) -> ledger.ManualAttachment | None:
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        return None
    return session.get(ledger.ManualAttachment, sha256)


# --------------------------------------------------------------------------- storing


def _same(entry: ManualEntry, ticket: Ticket) -> bool:
    return (
        ticket.weighed_at == entry.weighed_at
        and ticket.category == entry.category
        and (ticket.gross_g, ticket.tare_g, ticket.net_g)
        == (entry.gross_g, entry.tare_g, entry.net_g)
    )


def store(
    session: Session,
    entries: Sequence[ManualEntry],
    *,
    actor: str,
    now: datetime | None = None,
) -> ManualResult:
    """Store new entries as held manual tickets; entries already in the ledger with the
    same values are skipped, with other values refused (nothing stored). Audited."""
    now = now or datetime.now(UTC)
    result = ManualResult()
    if not actor.strip():
        raise ManualProblems(["who enters the tickets must be named"])
    by_site: dict[str, list[ManualEntry]] = {}
    for e in entries:
        by_site.setdefault(e.site_id, []).append(e)
    problems: list[str] = []
    fresh: list[ManualEntry] = []
    for site_id, group in sorted(by_site.items()):
        # Serialises writers of one site's manual chain (PostgreSQL; SQLite has one writer).
        session.execute(select(Site.site_id).where(Site.site_id == site_id).with_for_update())
        numbers = [e.ticket_no for e in group]
        existing: dict[str, tuple[ledger.ManualTicket, Ticket]] = {}
        for i in range(0, len(numbers), 500):
            for m, t in session.execute(
                select(ledger.ManualTicket, Ticket)
                .join(Ticket, Ticket.id == ledger.ManualTicket.ticket_id)
                .where(
                    ledger.ManualTicket.site_id == site_id,
                    ledger.ManualTicket.ticket_no.in_(numbers[i : i + 500]),
                )
            ):
                existing[m.ticket_no] = (m, t)
        for e in group:
            found = existing.get(e.ticket_no)
            if found is None:
                fresh.append(e)
            elif _same(e, found[1]):
                result.unchanged += 1
            else:
                m, t = found
                where = f"{e.source_name}:{e.source_line}" if e.source_line else e.source_name
                problems.append(
                    f"{where}:ticket_no: ticket {e.ticket_no} at {site_id} was entered before"
                    f" ({m.source_name}{f' line {m.source_line}' if m.source_line else ''},"
                    f" by {m.entered_by}) with other values (net {Decimal(t.net_g) / 1000} kg,"
                    f" {t.weighed_at.astimezone(LOCAL_TZ):%Y-%m-%d %H:%M}): a correction is a"
                    " reversal of that ticket and a new number"
                )
    if problems:
        raise ManualProblems(problems)
    findings: list[holds.Finding] = []
    for site_id in sorted({e.site_id for e in fresh}):
        device_id = ledger.manual_device_id(site_id)
        last = session.execute(
            select(Ticket.seq, Ticket.hash)
            .where(Ticket.device_id == device_id)
            .order_by(Ticket.seq.desc())
            .limit(1)
        ).first()
        seq, prev_hash = (last[0], last[1]) if last else (0, GENESIS_HASH)
        for e in (x for x in fresh if x.site_id == site_id):
            seq += 1
            record = _record(e, device_id, seq, prev_hash, actor, now)
            row = Ticket(**ledger.columns(record, e.weighed_at), received_at=now)
            session.add(row)
            session.flush()
            session.add(
                ledger.ManualTicket(
                    ticket_id=row.id,
                    site_id=e.site_id,
                    ticket_no=e.ticket_no,
                    source=e.source,
                    source_name=e.source_name,
                    source_line=e.source_line,
                    attachment_sha256=e.attachment_sha256,
                    vehicle_plate=e.vehicle_plate,
                    contractor_bin=e.contractor_bin,
                    entered_by=actor[:100],
                    entered_at=now,
                )
            )
            prev_hash = row.hash
            result.created.append(row.id)
            findings.append(holds.Finding(row.id, MANUAL_EVIDENCE, _detail(e, actor)))
    session.flush()
    holds.record(session, findings, rules_version=None, now=now)
    if result.created or result.unchanged:
        audit.append(
            session,
            actor=actor,
            action="tickets.manual_entered",
            subject=", ".join(sorted(by_site))[:200],
            data={
                "source": sorted({e.source_name for e in entries}),
                "created": result.created,
                "unchanged": result.unchanged,
            },
            now=now,
        )
    return result


def _detail(e: ManualEntry, actor: str) -> str:
    origin = (
        f"{e.source_name} line {e.source_line}"
        if e.source == "import"
        else f"paper ticket form, attachment sha256 {e.attachment_sha256}"
    )
    return f"manual ticket {e.ticket_no} entered by {actor} from {origin}"


def _record(
    e: ManualEntry, device_id: str, seq: int, prev_hash: str, actor: str, now: datetime
) -> dict[str, object]:
    return {
        "v": ledger.RECORD_VERSION,
        "evidence": "manual",
        "device_id": device_id,
        "seq": seq,
        "event_id": ledger.event_id(e.site_id, e.ticket_no),
        "prev_hash": prev_hash,
        "site_id": e.site_id,
        "scale_id": ledger.MANUAL_SCALE,
        "ticket_no": e.ticket_no,
        "weighed_at": e.weighed_at.isoformat(),
        "category": e.category,
        "gross_g": e.gross_g,
        "tare_g": e.tare_g,
        "net_g": e.net_g,
        "vehicle_plate": e.vehicle_plate,
        "contractor_bin": e.contractor_bin,
        "source": {"kind": e.source, "name": e.source_name, "line": e.source_line},
        "attachment_sha256": e.attachment_sha256,
        "entered_by": actor,
        "entered_at": now.isoformat(),
    }


def import_export(
    session: Session,
    data: bytes,
    name: str,
    *,
    site: str | None,
    actor: str,
    now: datetime | None = None,
) -> ManualResult:
    """Read, check and store a weighbridge export: all of it, or nothing."""
    now = now or datetime.now(UTC)
    entries = check_table(read_export(data, name), Known.load(session), site=site, now=now)
    return store(session, entries, actor=actor, now=now)


FORM_FIELDS: Final = (
    "ticket_no",
    "weighed_at",
    "category",
    "gross_kg",
    "tare_kg",
    "net_kg",
    "vehicle_plate",
    "contractor_bin",
)


def enter_paper(
    session: Session,
    fields: Mapping[str, str],
    *,
    site: str,
    scan: bytes,
    scan_name: str,
    actor: str,
    now: datetime | None = None,
) -> ManualResult:
    """One paper ticket from the form, with its scan or photo (required)."""
    now = now or datetime.now(UTC)
    cells: dict[str, Cell] = {
        k: v.strip() for k, v in fields.items() if k in FORM_FIELDS and v.strip()
    }
    entry, problems = check_row(
        cells, "form", Known.load(session), site=site or None, now=now,
        source="form", source_name="form", line=None,
    )  # fmt: skip
    if not scan:
        problems.append("form:scan: attach the scan or photo of the paper ticket")
    if problems or entry is None:
        raise ManualProblems(problems)
    digest = store_attachment(session, scan, f"form:scan ({scan_name[:80]})", actor=actor, now=now)
    return store(session, [replace(entry, attachment_sha256=digest)], actor=actor, now=now)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class ManualView:
    ticket_id: int
    device_id: str
    seq: int
    site_id: str
    ticket_no: str
    weighed_at: datetime
    category: str
    net_g: int
    vehicle_plate: str | None
    contractor_bin: str | None
    source: str
    source_name: str
    source_line: int | None
    attachment_sha256: str | None
    entered_by: str
    entered_at: datetime


def list_manual(session: Session, *, limit: int = 100) -> list[ManualView]:
    """The latest manual tickets with their provenance, newest first."""
    rows = session.execute(
        select(ledger.ManualTicket, Ticket)
        .join(Ticket, Ticket.id == ledger.ManualTicket.ticket_id)
        .order_by(ledger.ManualTicket.id.desc())
        .limit(limit)
    )
    return [
        ManualView(
            t.id,
            t.device_id,
            t.seq,
            m.site_id,
            m.ticket_no,
            t.weighed_at,
            t.category,
            t.net_g,
            m.vehicle_plate,
            m.contractor_bin,
            m.source,
            m.source_name,
            m.source_line,
            m.attachment_sha256,
            m.entered_by,
            m.entered_at,
        )
        for m, t in rows
    ]


def site_ids(session: Session) -> list[str]:
    return list(session.scalars(select(Site.site_id).order_by(Site.site_id)))
