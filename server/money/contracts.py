"""Contract registry: import awarded lots from CSV, JSON or XLSX, all or nothing.

Each row is checked in full and every problem is reported as ``file:row:column:
reason``; if any row is bad, nothing of the file is imported. Re-importing a
contract with changed terms makes a new version (earlier statements keep citing the
version they used); an unchanged row is left alone. Every import that changes
something is written to the audit log.

Columns (CSV and XLSX: a header row, order free; JSON: a list of objects, or
``{"contracts": [...]}``, row = position in the list from 1):
``contract_id, tender_id, lot, contractor_bin, contractor_name, category, stage,
regions, site_ids, period_start, period_end, cap_t, rate, rate_unit, budget_cap_kzt``.
``regions`` and ``site_ids`` are ``;``-separated (JSON may use lists); ``rate_unit``
is ``KZT/t`` (default) or ``MRP/t`` (paid × the MRP in force, see :mod:`server.money.mrp`).
Numbers are decimal text; an XLSX numeric cell is read through its shortest decimal
form, and one with more decimals than allowed is reported, never rounded.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.identifiers import bin_problem, did_you_mean, unknown_code
from server.ledger.models import Contract
from server.money.tabular import TabularError, open_csv
from server.regions import REGIONS

STAGES: Final = ("collection", "transport", "processing", "neutralisation")
#: Waste categories contracts are awarded for (the EPR operator's product groups).
CATEGORIES: Final = (
    "antifreeze",
    "batteries",
    "mercury_lamps",
    "packaging_glass",
    "packaging_metal",
    "packaging_paper",
    "packaging_polymer",
    "tyres",
    "used_oil",
)
RATE_UNITS: Final = ("KZT/t", "MRP/t")
REQUIRED: Final = (
    "contract_id",
    "tender_id",
    "lot",
    "contractor_bin",
    "contractor_name",
    "category",
    "stage",
    "period_start",
    "period_end",
    "cap_t",
    "rate",
)
OPTIONAL: Final = ("regions", "site_ids", "rate_unit", "budget_cap_kzt")
_IDENT: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./:-]{0,63}$")
_DECIMAL: Final = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,6})?$")


class ImportProblems(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s):\n" + "\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ContractRow:
    contract_id: str
    tender_id: str
    lot: str
    contractor_bin: str
    contractor_name: str
    category: str
    stage: str
    regions: tuple[str, ...]
    site_ids: tuple[str, ...]
    period_start: date
    period_end: date
    cap_t: Decimal
    rate: Decimal
    rate_unit: str
    budget_cap_kzt: Decimal | None
    source: str

    def terms_key(self) -> tuple[object, ...]:
        """What makes two versions different (the source location does not)."""
        return (
            self.tender_id,
            self.lot,
            self.contractor_bin,
            self.contractor_name,
            self.category,
            self.stage,
            self.regions,
            self.site_ids,
            self.period_start,
            self.period_end,
            self.cap_t,
            self.rate,
            self.rate_unit,
            self.budget_cap_kzt,
        )


def _check_row(raw: Mapping[str, str], where: str, problems: list[str]) -> ContractRow | None:
    before = len(problems)

    def get(col: str) -> str:
        return (raw.get(col) or "").strip()

    def bad(col: str, reason: str) -> None:
        problems.append(f"{where}:{col}: {reason}")

    for col in REQUIRED:
        if not get(col):
            bad(col, "missing")
    for col in ("contract_id", "tender_id", "lot", "category"):
        if get(col) and not _IDENT.fullmatch(get(col)):
            bad(col, f"{get(col)!r} is not an identifier (letters, digits, _ . / : -)")
    if get("contractor_bin") and (reason := bin_problem(get("contractor_bin"))):
        bad("contractor_bin", reason)
    if get("category") and _IDENT.fullmatch(get("category")) and get("category") not in CATEGORIES:
        bad("category", unknown_code("category", get("category"), CATEGORIES))
    if get("stage") and get("stage") not in STAGES:
        bad(
            "stage",
            f"{get('stage')!r} is not one of {', '.join(STAGES)}"
            + did_you_mean(get("stage"), STAGES),
        )
    rate_unit = get("rate_unit") or "KZT/t"
    if rate_unit not in RATE_UNITS:
        bad("rate_unit", f"{rate_unit!r} is not one of {', '.join(RATE_UNITS)}")
    regions = tuple(sorted({r.strip() for r in get("regions").split(";") if r.strip()}))
    for region in regions:
        if region not in REGIONS:
            bad("regions", unknown_code("region", region, REGIONS))
    site_ids = tuple(sorted({s.strip() for s in get("site_ids").split(";") if s.strip()}))
    if not regions and not site_ids:
        bad("regions", "a contract needs regions, site_ids or both")
    dates: dict[str, date] = {}
    for col in ("period_start", "period_end"):
        if get(col):
            try:
                dates[col] = date.fromisoformat(get(col))
            except ValueError:
                bad(col, f"{get(col)!r} is not a date like 2026-01-31")
    if len(dates) == 2 and dates["period_end"] < dates["period_start"]:
        bad("period_end", "is before period_start")
    numbers: dict[str, Decimal | None] = {}
    for col in ("cap_t", "rate", "budget_cap_kzt"):
        text = get(col).replace(" ", "").replace("\u00a0", "")
        if not text:
            numbers[col] = None
            continue
        if not _DECIMAL.fullmatch(text):
            bad(col, f"{get(col)!r} is not a non-negative decimal (use . for the point)")
            continue
        try:
            numbers[col] = Decimal(text)
        except InvalidOperation:
            bad(col, f"{get(col)!r} is not a number")
    cap = numbers.get("cap_t")
    if cap is not None and cap * 1_000_000 != int(cap * 1_000_000):
        bad("cap_t", "finer than a gram")
    budget = numbers.get("budget_cap_kzt")
    if budget is not None and budget != budget.quantize(Decimal("0.01")):
        bad("budget_cap_kzt", "tenge have at most 2 decimals (tiyn)")
    if len(problems) > before:
        return None
    rate = numbers["rate"]
    assert cap is not None
    assert rate is not None
    return ContractRow(
        contract_id=get("contract_id"),
        tender_id=get("tender_id"),
        lot=get("lot"),
        contractor_bin=get("contractor_bin"),
        contractor_name=get("contractor_name"),
        category=get("category"),
        stage=get("stage"),
        regions=regions,
        site_ids=site_ids,
        period_start=dates["period_start"],
        period_end=dates["period_end"],
        cap_t=cap,
        rate=rate,
        rate_unit=rate_unit,
        budget_cap_kzt=numbers.get("budget_cap_kzt"),
        source=where,
    )


def check_rows(rows: Iterable[tuple[str, Mapping[str, str]]]) -> list[ContractRow]:
    """Validate every row; raise :class:`ImportProblems` listing all problems, if any."""
    problems: list[str] = []
    result: list[ContractRow] = []
    seen: dict[str, str] = {}
    for where, raw in rows:
        row = _check_row(raw, where, problems)
        if row is None:
            continue
        if row.contract_id in seen:
            problems.append(
                f"{where}:contract_id: {row.contract_id} repeats {seen[row.contract_id]}"
            )
            continue
        seen[row.contract_id] = where
        result.append(row)
    if problems:
        raise ImportProblems(problems)
    return result


def read_csv(path: Path) -> list[ContractRow]:
    try:
        with open_csv(path) as reader:
            header = reader.fieldnames or []
            missing = [c for c in REQUIRED if c not in header]
            unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
            if missing or unknown:
                problems = [f"{path}:1:{c}: required column missing" for c in missing]
                problems += [f"{path}:1:{c}: unknown column" for c in unknown]
                raise ImportProblems(problems)
            rows = [(f"{path}:{reader.line_num}", dict(r)) for r in reader]
    except TabularError as exc:
        raise ImportProblems([str(exc)]) from None
    except OSError as exc:
        raise ImportProblems([f"{path}: cannot read ({exc.strerror})"]) from None
    except csv.Error as exc:
        raise ImportProblems([f"{path}: not valid CSV ({exc})"]) from None
    if not rows:
        raise ImportProblems([f"{path}: no contract rows"])
    return check_rows(rows)


def read_json(path: Path) -> list[ContractRow]:
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"), parse_float=Decimal)
    except UnicodeDecodeError as exc:
        raise ImportProblems([f"{path}: not UTF-8 text ({exc.reason})"]) from None
    except OSError as exc:
        raise ImportProblems([f"{path}: cannot read ({exc.strerror})"]) from None
    except ValueError as exc:
        raise ImportProblems([f"{path}: not valid JSON ({exc})"]) from None
    if isinstance(data, dict) and isinstance(data.get("contracts"), list):
        data = data["contracts"]
    if not isinstance(data, list):
        raise ImportProblems([f'{path}: expected a list of contracts or {{"contracts": [...]}}'])
    if not data:
        raise ImportProblems([f"{path}: no contract rows"])
    rows: list[tuple[str, Mapping[str, str]]] = []
    problems: list[str] = []
    for i, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            problems.append(f"{path}:{i}: expected an object, got {type(item).__name__}")
            continue
        unknown = sorted(k for k in item if k not in REQUIRED + OPTIONAL)
        problems += [f"{path}:{i}:{k}: unknown field" for k in unknown]
        rows.append((f"{path}:{i}", {k: _text(v) for k, v in item.items()}))
    if problems:
        raise ImportProblems(problems)
    return check_rows(rows)


def _text(value: object) -> str:
    """A JSON or spreadsheet value as the text the row checks expect."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ";".join(_text(v) for v in value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        # repr is the shortest text that reads back as the same double: what the
        # spreadsheet shows. Digits beyond what a column allows are then reported.
        return repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def read_xlsx(path: Path) -> list[ContractRow]:
    """The first sheet of a workbook; row numbers are the sheet's own."""
    import zipfile

    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except OSError as exc:
        raise ImportProblems([f"{path}: cannot read ({exc.strerror})"]) from None
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ImportProblems([f"{path}: not an XLSX workbook ({exc})"]) from None
    try:
        ws = wb.worksheets[0]
        it = ws.iter_rows(values_only=True)
        header_row = next(it, None)
        if header_row is None:
            raise ImportProblems([f"{path}: the first sheet is empty"])
        header = [_text(h).strip() for h in header_row]
        missing = [c for c in REQUIRED if c not in header]
        unknown = [c for c in header if c and c not in REQUIRED + OPTIONAL]
        if missing or unknown:
            problems = [f"{path}:1:{c}: required column missing" for c in missing]
            problems += [f"{path}:1:{c}: unknown column" for c in unknown]
            raise ImportProblems(problems)
        rows: list[tuple[str, Mapping[str, str]]] = []
        for number, values in enumerate(it, start=2):
            if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
                continue  # spreadsheets end with blank rows
            rows.append(
                (
                    f"{path}:{number}",
                    {h: _text(v) for h, v in zip(header, values, strict=False) if h},
                )
            )
    finally:
        wb.close()
    if not rows:
        raise ImportProblems([f"{path}: no contract rows"])
    return check_rows(rows)


READERS: Final = {".csv": read_csv, ".json": read_json, ".xlsx": read_xlsx}


def read_file(path: Path) -> list[ContractRow]:
    """Read lots from a CSV, JSON or XLSX file, chosen by its suffix."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise ImportProblems(
            [f"{path}: unknown file type {path.suffix!r} (use {', '.join(READERS)})"]
        )
    return reader(path)


@dataclass(frozen=True, slots=True)
class ImportResult:
    created: int
    amended: int
    unchanged: int


def store(
    session: Session,
    rows: Iterable[ContractRow],
    now: datetime | None = None,
    *,
    actor: str = "system",
    source: str = "",
) -> ImportResult:
    """Insert new contracts and new versions of changed ones, in the caller's
    transaction; an import that changes anything is audited with each new version."""
    from server.ledger import audit

    now = now or datetime.now(UTC)
    created = amended = unchanged = 0
    versions: list[list[str]] = []
    for row in rows:
        latest = session.scalars(
            select(Contract)
            .where(Contract.contract_id == row.contract_id)
            .order_by(Contract.version.desc())
            .limit(1)
        ).first()
        if latest is not None and _row_of(latest).terms_key() == row.terms_key():
            unchanged += 1
            continue
        version = 1 if latest is None else latest.version + 1
        session.add(
            Contract(
                contract_id=row.contract_id,
                version=version,
                tender_id=row.tender_id,
                lot=row.lot,
                contractor_bin=row.contractor_bin,
                contractor_name=row.contractor_name,
                category=row.category,
                stage=row.stage,
                regions=";".join(row.regions),
                site_ids=";".join(row.site_ids),
                period_start=row.period_start,
                period_end=row.period_end,
                cap_t=row.cap_t,
                rate=row.rate,
                rate_unit=row.rate_unit,
                budget_cap_kzt=row.budget_cap_kzt,
                source=row.source[:300],
                imported_at=now,
            )
        )
        if latest is None:
            created += 1
        else:
            amended += 1
        terms = json.dumps([str(x) for x in row.terms_key()], separators=(",", ":"))
        versions.append(
            [f"{row.contract_id}@v{version}", hashlib.sha256(terms.encode()).hexdigest()]
        )
    session.flush()
    if versions:
        audit.append(
            session,
            actor=actor,
            action="contracts.imported",
            subject=(source or "contracts")[:200],
            data={
                "created": created,
                "amended": amended,
                "unchanged": unchanged,
                "versions": versions,
            },
            now=now,
        )
    return ImportResult(created, amended, unchanged)


def _row_of(c: Contract) -> ContractRow:
    return ContractRow(
        contract_id=c.contract_id,
        tender_id=c.tender_id,
        lot=c.lot,
        contractor_bin=c.contractor_bin,
        contractor_name=c.contractor_name,
        category=c.category,
        stage=c.stage,
        regions=c.region_list,
        site_ids=c.site_list,
        period_start=c.period_start,
        period_end=c.period_end,
        cap_t=c.cap_t,
        rate=c.rate,
        rate_unit=c.rate_unit,
        budget_cap_kzt=c.budget_cap_kzt,
        source=c.source,
    )


def latest_versions(session: Session) -> list[Contract]:
    """The current version of every contract."""
    newest = (
        select(Contract.contract_id, func.max(Contract.version).label("v"))
        .group_by(Contract.contract_id)
        .subquery()
    )
    return list(
        session.scalars(
            select(Contract)
            .join(
                newest,
                (Contract.contract_id == newest.c.contract_id) & (Contract.version == newest.c.v),
            )
            .order_by(Contract.contract_id)
        )
    )


def contract_row(c: Contract) -> dict[str, object]:
    """A contract version for output, its values as stored (dates, Decimals)."""
    return {
        "contract_id": c.contract_id,
        "version": c.version,
        "tender_id": c.tender_id,
        "lot": c.lot,
        "contractor_bin": c.contractor_bin,
        "contractor_name": c.contractor_name,
        "category": c.category,
        "stage": c.stage,
        "regions": list(c.region_list),
        "site_ids": list(c.site_list),
        "period_start": c.period_start,
        "period_end": c.period_end,
        "cap_t": c.cap_t,
        "rate": c.rate,
        "rate_unit": c.rate_unit,
        "budget_cap_kzt": c.budget_cap_kzt,
    }
