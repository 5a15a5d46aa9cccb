"""The payment register of a month: what accounting pays, and marking it paid.

:func:`build_register` lists the month's approved statements (and, if asked, the paid
ones) with contractor, BIN, bank account and amount. A statement whose contractor has
no bank account, or whose IBAN does not check, or whose amount is negative (an
adjustment to recover, not a payment) stays in the list with its ``problem`` said,
never dropped. It is written as XLSX (:func:`register_xlsx`) or CSV
(:func:`register_csv`: UTF-8 with ``,`` and a decimal point for programs; with
``excel=True`` a byte-order mark, ``;`` and a decimal comma, as Excel reads CSV in
Kazakh and Russian locales). Amounts are the ledger's exact decimals.

The same file comes back with the bank's reference in ``payment_ref``:
:func:`read_payments` reads it (CSV either way, or XLSX) and :func:`mark_paid` pays
each row through :func:`server.money.statements.pay` — the ``statements.pay``
permission and the four-eyes rule — refusing a row whose statement, hash or amount is
not the ledger's. Every row gets its own transaction and its own line in the report.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.ledger.accounting import StoredStatement
from server.money import bank
from server.money.documents.catalog import Labels
from server.money.documents.statement_xlsx import append_row
from server.money.inputs import StatementError, parse_period
from server.money.statements import pay
from server.people.permissions import Actor, PermissionDenied

COLUMNS: Final = (
    "statement_id",
    "period",
    "kind",
    "status",
    "contractor_bin",
    "contractor_name",
    "iban",
    "bic",
    "bank_name",
    "amount_kzt",
    "sha256",
    "problem",
    "payment_ref",
)
"""The register's columns, as named in the header of every file it is written to."""
NEEDED: Final = ("statement_id", "amount_kzt", "sha256", "payment_ref")
"""What a file brought back must have to mark statements paid."""
MAX_BYTES: Final = 5 * 1024 * 1024
MAX_ROWS: Final = 20_000
NO_BANK: Final = "no_bank_account"
BAD_IBAN: Final = "invalid_iban"
NEGATIVE: Final = "negative_amount"


class RegisterError(ValueError):
    """A register file that cannot be read at all; the message names the file and why."""


@dataclass(frozen=True, slots=True)
class RegisterRow:
    statement_id: int
    period: str
    kind: str
    status: str
    contractor_bin: str
    contractor_name: str
    iban: str
    bic: str
    bank_name: str
    amount_kzt: Decimal
    sha256: str
    payment_ref: str
    problem: str
    """Empty, or ``no_bank_account``, ``invalid_iban: <why>``, ``negative_amount``."""

    def problem_text(self, labels: Labels) -> str:
        code, _, detail = self.problem.partition(": ")
        text = {
            NO_BANK: labels("reg.no_bank"),
            BAD_IBAN: labels("reg.bad_iban"),
            NEGATIVE: labels("reg.negative"),
        }.get(code, code)
        return f"{text}: {detail}" if detail else text


@dataclass(frozen=True, slots=True)
class Register:
    period: str
    rows: tuple[RegisterRow, ...]

    @property
    def payable_total(self) -> Decimal:
        return sum((r.amount_kzt for r in self.rows if not r.problem), Decimal("0.00"))


def build_register(session: Session, period: str, *, include_paid: bool = False) -> Register:
    """The month's approved (and with ``include_paid`` paid) statements, by contractor."""
    parse_period(period)
    statuses = ("approved", "paid") if include_paid else ("approved",)
    found = session.scalars(
        select(StoredStatement)
        .where(StoredStatement.period == period, StoredStatement.status.in_(statuses))
        .order_by(StoredStatement.contractor_bin, StoredStatement.id)
    )
    accounts = bank.accounts(session)
    rows = []
    for st in found:
        account = accounts.get(st.contractor_bin)
        if account is None:
            problem = NO_BANK
        elif (why := account.problem) is not None:
            problem = f"{BAD_IBAN}: {why}"
        elif st.total_kzt < 0:
            problem = NEGATIVE
        else:
            problem = ""
        rows.append(
            RegisterRow(
                statement_id=st.id,
                period=st.period,
                kind=st.kind,
                status=st.status,
                contractor_bin=st.contractor_bin,
                contractor_name=json.loads(st.body)["contractor_name"],
                iban=account.iban if account else "",
                bic=account.bic if account else "",
                bank_name=account.bank_name if account else "",
                amount_kzt=st.total_kzt,
                sha256=st.sha256,
                payment_ref=st.payment_ref or "",
                problem=problem,
            )
        )
    return Register(period, tuple(rows))


def _values(row: RegisterRow) -> list[Any]:
    return [
        row.statement_id,
        row.period,
        row.kind,
        row.status,
        row.contractor_bin,
        row.contractor_name,
        row.iban,
        row.bic,
        row.bank_name,
        row.amount_kzt,
        row.sha256,
        row.problem,
        row.payment_ref,
    ]


#: Text a spreadsheet opening a CSV would take for a formula.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
_TEXT_COLUMNS: Final = ("contractor_name", "bank_name", "problem", "payment_ref")


def _inert(text: str) -> str:
    """A text field as a spreadsheet will show it, never run it (``'`` before ``=`` …)."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def register_csv(register: Register, *, excel: bool = False) -> bytes:
    """The register as CSV; ``excel``: BOM, ``;`` and a decimal comma (ru/kk Excel)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";" if excel else ",", lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in register.rows:
        values = _values(row)
        for column in _TEXT_COLUMNS:
            i = COLUMNS.index(column)
            values[i] = _inert(str(values[i]))
        values[COLUMNS.index("amount_kzt")] = (
            format(row.amount_kzt, "f").replace(".", ",") if excel else format(row.amount_kzt, "f")
        )
        writer.writerow(values)
    text = out.getvalue()
    return ("\ufeff" + text if excel else text).encode("utf-8")


def register_xlsx(register: Register, *, lang: str) -> bytes:
    """The register as XLSX: a title, the columns named in ``lang``, then the column
    keys (what a file brought back is read by), the rows and the payable total."""
    lb = Labels(lang)
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = register.period
    append_row(ws, [lb("reg.title", period=register.period)])
    ws["A1"].font = Font(bold=True, size=14)
    names = {
        "statement_id": lb("reg.statement"),
        "period": lb("doc.period"),
        "kind": lb("doc.kind"),
        "status": lb("doc.status"),
        "contractor_bin": lb("doc.bin"),
        "contractor_name": lb("doc.contractor"),
        "iban": lb("reg.iban"),
        "bic": lb("reg.bic"),
        "bank_name": lb("reg.bank"),
        "amount_kzt": lb("doc.amount"),
        "sha256": "SHA-256",
        "problem": lb("reg.problem"),
        "payment_ref": lb("reg.payment_ref"),
    }
    append_row(ws, [names[c] for c in COLUMNS], bold=True)
    append_row(ws, list(COLUMNS))
    for cell in ws[3]:
        cell.font = Font(color="808080", size=8)
    amount_col = COLUMNS.index("amount_kzt")
    for row in register.rows:
        values = _values(row)
        values[COLUMNS.index("kind")] = lb.of("statement_kind", row.kind)
        values[COLUMNS.index("status")] = lb.of("statement_status", row.status)
        values[COLUMNS.index("problem")] = row.problem_text(lb) if row.problem else ""
        append_row(ws, values)
    append_row(ws, [])
    append_row(
        ws, [lb("reg.total")] + [None] * (amount_col - 1) + [register.payable_total], bold=True
    )
    widths = (10, 9, 12, 12, 14, 30, 24, 12, 24, 16, 66, 30, 20)
    for letter, width in zip("ABCDEFGHIJKLM", widths, strict=True):
        ws.column_dimensions[letter].width = width
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# --------------------------------------------------------------------------- bringing it back


@dataclass(frozen=True, slots=True)
class Payment:
    """One row of a register brought back: which statement, as what, paid how."""

    line: int
    statement_id: int | None
    amount_kzt: Decimal | None
    sha256: str
    reference: str
    problem: str = ""
    """Why the row cannot be read (it is then reported, not paid)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    line: int
    statement_id: int | None
    state: str
    """``paid`` now, ``already`` paid with this reference, or ``refused``."""
    message: str

    @property
    def paid(self) -> bool:
        return self.state == "paid"


_AMOUNT = re.compile(r"-?\d{1,15}([.,]\d{1,2})?")


def _amount(value: Any) -> Decimal | None:
    """An amount from a cell: text (``546731.72`` or ``546731,72``) or a spreadsheet number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # A number cell: the shortest text that reads back as this float is what was
        # written (an amount has at most 15 digits, within a double's precision).
        text = repr(value)
        try:
            d = Decimal(text)
        except InvalidOperation:
            return None
        return d if d.is_finite() and d == d.quantize(Decimal("0.01")) else None
    text = "".join(str(value).split())
    return Decimal(text.replace(",", ".")) if _AMOUNT.fullmatch(text) else None


def _payment(line: int, record: dict[str, Any]) -> Payment:
    raw_id = record.get("statement_id")
    text_id = str(raw_id).strip() if raw_id is not None else ""
    if isinstance(raw_id, float) and raw_id.is_integer():
        text_id = str(int(raw_id))
    sid = int(text_id) if text_id.isdigit() and 0 < len(text_id) <= 18 else None
    amount = _amount(record.get("amount_kzt"))
    sha = str(record.get("sha256") or "").strip().lower()
    ref = " ".join(str(record.get("payment_ref") or "").split())
    problem = ""
    if sid is None:
        problem = f"statement_id {text_id!r} is not a statement number"
    elif amount is None:
        problem = f"amount_kzt {record.get('amount_kzt')!r} is not an amount such as 546731.72"
    elif len(ref) > 100:
        problem = "payment_ref longer than 100 characters"
    return Payment(line, sid, amount, sha, ref, problem)


def _records(
    header: Sequence[Any], rows: Iterable[tuple[int, Sequence[Any]]], name: str
) -> list[Payment]:
    keys = [str(h or "").strip().lower() for h in header]
    missing = [k for k in NEEDED if k not in keys]
    if missing:
        raise RegisterError(f"{name}: column(s) missing: {', '.join(missing)}")
    out = []
    for line, values in rows:
        if not any(v not in (None, "") for v in values):
            continue
        record = {k: (values[i] if i < len(values) else None) for i, k in enumerate(keys)}
        first = str(record.get("statement_id") or "").strip().removesuffix(".0")
        if not first.isdigit() and not str(record.get("payment_ref") or "").strip():
            continue  # the XLSX's total or a note: no statement and nothing paid
        out.append(_payment(line, record))
        if len(out) > MAX_ROWS:
            raise RegisterError(f"{name}: more than {MAX_ROWS} rows")
    return out


def read_payments(data: bytes, name: str) -> list[Payment]:
    """The rows of a register file brought back (CSV with ``,`` or ``;``, or XLSX)."""
    if len(data) > MAX_BYTES:
        raise RegisterError(f"{name}: larger than {MAX_BYTES // (1024 * 1024)} MB")
    if data[:2] == b"PK":
        return _read_xlsx(data, name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RegisterError(f"{name}: not UTF-8 text (byte {exc.start}) and not XLSX") from None
    lines = text.splitlines()
    if not lines:
        raise RegisterError(f"{name}: empty")
    first = lines[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    try:
        reader = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as exc:
        raise RegisterError(f"{name}: not CSV: {exc}") from None
    return _records(reader[0], ((i, r) for i, r in enumerate(reader[1:], start=2)), name)


def _read_xlsx(data: bytes, name: str) -> list[Payment]:
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:
        raise RegisterError(f"{name}: not a readable XLSX ({type(exc).__name__})") from None
    try:
        ws = wb.worksheets[0]
        rows = list(ws.iter_rows(values_only=True, max_row=MAX_ROWS + 10))
    finally:
        wb.close()
    for i, values in enumerate(rows):
        if "statement_id" in [str(v or "").strip().lower() for v in values]:
            return _records(
                values, ((j + 1, r) for j, r in enumerate(rows[i + 1 :], start=i + 1)), name
            )
    raise RegisterError(f"{name}: no header row with statement_id")


def _pay_one(session: Session, p: Payment, actor: Actor) -> tuple[bool, str]:
    """Pay one row (True), find it paid already with this reference (False), or raise
    StatementError saying why not."""
    assert p.statement_id is not None
    assert p.amount_kzt is not None
    st = session.get(StoredStatement, p.statement_id)
    if st is None:
        raise StatementError(f"statement {p.statement_id} does not exist")
    if p.sha256 != st.sha256:
        raise StatementError(
            f"statement {st.id}: sha256 {p.sha256[:16] or '(empty)'}… is not the ledger's"
            f" {st.sha256[:16]}…"
        )
    if p.amount_kzt != st.total_kzt:
        raise StatementError(
            f"statement {st.id}: amount {format(p.amount_kzt, 'f')} is not the ledger's"
            f" {format(st.total_kzt, 'f')}"
        )
    if st.status == "paid":
        if st.payment_ref == p.reference:
            return False, f"statement {st.id} already paid ({st.payment_ref})"
        raise StatementError(f"statement {st.id} is already paid with reference {st.payment_ref}")
    account = bank.account_of(session, st.contractor_bin)
    if account is None or account.problem is not None:
        raise StatementError(
            f"statement {st.id}: {st.contractor_bin} has no valid bank account on record"
        )
    if st.total_kzt < 0:
        raise StatementError(f"statement {st.id}: a negative amount is recovered, not paid")
    row = pay(session, st.id, actor=actor, reference=p.reference, expected_total=p.amount_kzt)
    return True, f"statement {row.id} paid: {format(row.total_kzt, 'f')} KZT, {row.payment_ref}"


def mark_paid(
    sessions: sessionmaker[Session], payments: Sequence[Payment], *, actor: Actor
) -> list[Outcome]:
    """Mark each row's statement paid with its reference, each in its own transaction."""
    out = []
    for p in payments:
        if p.problem:
            out.append(Outcome(p.line, p.statement_id, "refused", p.problem))
            continue
        if not p.reference:
            out.append(Outcome(p.line, p.statement_id, "refused", "no payment_ref: not paid"))
            continue
        try:
            with sessions.begin() as session:
                paid, message = _pay_one(session, p, actor)
        except (StatementError, PermissionDenied) as exc:
            out.append(Outcome(p.line, p.statement_id, "refused", str(exc)))
            continue
        out.append(Outcome(p.line, p.statement_id, "paid" if paid else "already", message))
    return out


__all__ = [
    "COLUMNS",
    "Outcome",
    "Payment",
    "Register",
    "RegisterError",
    "RegisterRow",
    "build_register",
    "mark_paid",
    "read_payments",
    "register_csv",
    "register_xlsx",
]
