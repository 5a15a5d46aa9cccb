"""Statement documents read back: every figure of the PDF (through ``pdftotext``) and
the XLSX (through openpyxl) equals the ledger's stored statement, in all three
languages; the QR code is the check URL."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import segno
from openpyxl import load_workbook
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.fleet.registry import upsert_site
from server.ledger.accounting import StoredStatement
from server.ledger.db import make_engine, migrate, session_factory
from server.ledger.manual import is_manual
from server.ledger.models import Ticket
from server.money import holds, manual
from server.money.documents import DocumentError, render_statement
from server.money.documents.catalog import Labels
from server.money.statements import compute_and_store, pay
from tests.server.money.test_manual import CP1251, NOW, SITE
from tests.server.money.test_statements import T0, setup_month
from tests.support.accounts import payment_team
from tests.support.builders import fake_device, register
from tests.support.tickets import contract, import_contracts, ingest, weigh

BASE = "https://epr.example.kz"
LANGS = ("kk", "ru", "en")
KAZAKH = "әғқңөұүһі"


def parse(cell: str, lang: str) -> Decimal | None:
    """A printed figure back to a Decimal, written here independently of the writers."""
    text = cell.replace("\u00a0", "").replace(" ", "")
    text = text.replace(",", "") if lang == "en" else text.replace(",", ".")
    return Decimal(text) if re.fullmatch(r"-?\d+(\.\d+)?", text) else None


def figures(line: str, lang: str) -> list[Decimal]:
    cells = re.split(r" {2,}", line.strip())
    return [d for c in cells if (d := parse(c, lang)) is not None]


@pytest.fixture(scope="module")
def paid_statement(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoredStatement]:
    """One paid statement, made once: documents depend on its stored row only (the
    API tests fetch them from both databases)."""
    tmp = tmp_path_factory.mktemp("ledger")
    engine = make_engine(f"sqlite:///{tmp / 'ledger.sqlite3'}")
    migrate(engine)
    sessions = session_factory(engine)
    sid = setup_month(tmp, sessions)
    team = payment_team(sessions)
    with sessions.begin() as session:
        pay(session, sid, actor=team.payer, reference="PP-2026-0412", expected_total="546731.72")
    with sessions() as session:
        row = session.get(StoredStatement, sid)
        assert row is not None
        session.expunge(row)
    yield row
    engine.dispose()


def pdf_text(tmp_path: Path, data: bytes, lang: str) -> str:
    path = tmp_path / f"s-{lang}.pdf"
    path.write_bytes(data)
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def line_with(text: str, *parts: str) -> str:
    found = [ln for ln in text.splitlines() if all(p in ln for p in parts)]
    assert len(found) == 1, (parts, found)
    return found[0]


@pytest.mark.parametrize("lang", LANGS)
def test_every_pdf_figure_is_the_ledgers(
    tmp_path: Path, paid_statement: StoredStatement, lang: str
) -> None:
    row = paid_statement
    body: dict[str, Any] = json.loads(row.body)
    lb = Labels(lang)
    text = pdf_text(tmp_path, render_statement(row, fmt="pdf", lang=lang, base_url=BASE), lang)
    assert lb("doc.title", id=row.id) in text
    assert lb.of("statement_status", "paid") in text
    for ln in body["lines"]:
        row_text = line_with(
            text, f"{ln['contract_id']} v{ln['version']}", lb.of("stage", ln["stage"])
        )
        # tickets, tonnes, device and manual tonnes, rate in KZT/t, amount, in order
        assert figures(row_text, lang) == [
            Decimal(ln["tickets"]),
            Decimal(ln["tonnes"]),
            Decimal(ln["device_tonnes"]),
            Decimal(ln["manual_tonnes"]),
            Decimal(ln["rate_kzt_per_t"]),
            Decimal(ln["amount_kzt"]),
        ]
        # the contract's own rate and unit, e.g. "2.98 MRP/t"
        (rate_cell,) = [c for c in re.split(r" {2,}", row_text) if ln["rate_unit"] in c]
        assert parse(rate_cell.removesuffix(ln["rate_unit"]).strip(), lang) == Decimal(ln["rate"])
    total_line = line_with(text, lb("doc.total") + " ")
    assert figures(total_line, lang) == [
        Decimal(body["total_tonnes"]),
        sum(Decimal(ln["device_tonnes"]) for ln in body["lines"]),
        sum(Decimal(ln["manual_tonnes"]) for ln in body["lines"]),
        Decimal(body["total_kzt"]),
    ]
    over = sum(Decimal(u["tonnes"]) for u in body["over_cap"])
    held = sum(Decimal(h["tonnes"]) for h in body["held"])
    assert figures(line_with(text, lb("doc.total_kzt")), lang) == [Decimal(body["total_kzt"])]
    assert figures(line_with(text, lb("doc.total_tonnes")), lang) == [Decimal(body["total_tonnes"])]
    assert figures(line_with(text, lb("doc.over_cap_tonnes")), lang) == [over]
    assert figures(line_with(text, lb("doc.held_tonnes")), lang) == [held]
    for u in body["over_cap"]:
        assert figures(line_with(text, lb.of("portion", u["reason"])), lang) == [
            Decimal(u["tonnes"])
        ]
    for h in body["held"]:
        held_line = line_with(text, f"{h['device_id']}:{h['seq']}")
        assert Decimal(h["tonnes"]) in figures(held_line, lang)
        for r in h["reasons"]:
            assert lb.of("hold", r["reason"]) in held_line
    assert "(Asia/Almaty)" in line_with(text, lb("doc.computed"), "ops")
    assert "head.of.payments" in line_with(text, lb("doc.approved"))
    assert "treasury" in line_with(text, lb("doc.paid"))
    assert "PP-2026-0412" in text
    assert row.sha256 in line_with(text, lb("doc.sha256"))
    assert f"{BASE}/check/{row.sha256}" in text


def test_kazakh_letters_survive_the_pdf(tmp_path: Path, paid_statement: StoredStatement) -> None:
    text = pdf_text(
        tmp_path, render_statement(paid_statement, fmt="pdf", lang="kk", base_url=BASE), "kk"
    )
    assert set("қңөұүі") <= set(text)  # the catalog's Kazakh words come out as letters
    assert "Ведомость" in text


@pytest.mark.parametrize("lang", LANGS)
def test_every_xlsx_figure_is_the_ledgers(
    paid_statement: StoredStatement, lang: str, tmp_path: Path
) -> None:
    row = paid_statement
    body: dict[str, Any] = json.loads(row.body)
    lb = Labels(lang)
    path = tmp_path / f"s-{lang}.xlsx"
    path.write_bytes(render_statement(row, fmt="xlsx", lang=lang, base_url=BASE))
    ws = load_workbook(path).active
    assert ws is not None
    rows = [list(r) for r in ws.iter_rows(values_only=True)]

    def exact(v: object) -> Decimal:
        assert isinstance(v, int | float), v
        return Decimal(repr(v))

    def row_of(first: object, *more: object) -> list[Any]:
        found = [r for r in rows if r and r[0] == first and all(m in r for m in more)]
        assert len(found) == 1, (first, more)
        return found[0]

    for ln in body["lines"]:
        r = row_of(f"{ln['contract_id']} v{ln['version']}", lb.of("stage", ln["stage"]))
        assert r[3] == ln["tickets"]
        assert exact(r[4]) == Decimal(ln["tonnes"])
        assert exact(r[5]) == Decimal(ln["device_tonnes"])
        assert exact(r[6]) == Decimal(ln["manual_tonnes"])
        assert exact(r[7]) == Decimal(ln["rate"])
        assert r[8] == ln["rate_unit"]
        assert exact(r[9]) == Decimal(ln["rate_kzt_per_t"])
        assert exact(r[10]) == Decimal(ln["amount_kzt"])
    total = row_of(lb("doc.total"))
    assert (exact(total[4]), exact(total[10])) == (
        Decimal(body["total_tonnes"]),
        Decimal(body["total_kzt"]),
    )
    assert exact(row_of(lb("doc.total_kzt"))[1]) == Decimal(body["total_kzt"])
    assert exact(row_of(lb("doc.over_cap_tonnes"))[1]) == sum(
        Decimal(u["tonnes"]) for u in body["over_cap"]
    )
    assert exact(row_of(lb("doc.held_tonnes"))[1]) == sum(
        Decimal(h["tonnes"]) for h in body["held"]
    )
    for u in body["over_cap"]:
        assert exact(row_of(u["contract_id"], lb.of("portion", u["reason"]))[4]) == Decimal(
            u["tonnes"]
        )
    for h in body["held"]:
        assert exact(row_of(f"{h['device_id']}:{h['seq']}")[4]) == Decimal(h["tonnes"])
    assert row_of(lb("doc.status"))[1] == lb.of("statement_status", "paid")
    assert row_of(lb("doc.sha256"))[1] == row.sha256
    assert row_of(lb("doc.check"))[1] == f"{BASE}/check/{row.sha256}"
    assert "treasury" in row_of(lb("doc.paid"))[1]
    assert row_of(lb("doc.payment_ref"))[1] == "PP-2026-0412"


def test_the_qr_code_is_the_check_url(tmp_path: Path, paid_statement: StoredStatement) -> None:
    pdf = tmp_path / "s.pdf"
    pdf.write_bytes(render_statement(paid_statement, fmt="pdf", lang="ru", base_url=BASE))
    subprocess.run(["pdfimages", "-png", str(pdf), str(tmp_path / "img")], check=True)
    (png,) = sorted(tmp_path.glob("img-*.png"))
    expected = segno.make(f"{BASE}/check/{paid_statement.sha256}", error="m", micro=False)
    border, size = 4, len(expected.matrix)
    image = Image.open(png).convert("L")
    scale = image.width // (size + 2 * border)
    assert image.width == (size + 2 * border) * scale
    seen = [
        [
            image.getpixel(((border + x) * scale + scale // 2, (border + y) * scale + scale // 2))
            == 0
            for x in range(size)
        ]
        for y in range(size)
    ]
    assert seen == [[bool(m) for m in row] for row in expected.matrix]


def test_unknown_format_or_language_is_refused(paid_statement: StoredStatement) -> None:
    with pytest.raises(DocumentError, match="format 'docx'"):
        render_statement(paid_statement, fmt="docx", lang="ru", base_url=BASE)
    with pytest.raises(DocumentError, match="language 'de'"):
        render_statement(paid_statement, fmt="pdf", lang="de", base_url=BASE)


def test_an_adjustments_document_prints_its_differences(tmp_path: Path) -> None:
    """An adjustment's lines are its deltas, with the rate of the recomputed statement."""
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    migrate(engine)
    sessions = session_factory(engine)
    sid = setup_month(tmp_path, sessions)
    late = fake_device(tmp_path, "rp-late-01", start=T0 + timedelta(days=3))
    register(sessions, late)
    ingest(sessions, [weigh(late, "2000", category="used_oil")])
    with sessions.begin() as session:
        (adj,) = compute_and_store(
            session, ["2026-03"], actor=payment_team(sessions).computer
        ).drafts
        text = pdf_text(tmp_path, render_statement(adj, fmt="pdf", lang="en", base_url=BASE), "en")
    engine.dispose()
    lb = Labels("en")
    assert lb("doc.adjustment_title", id=adj.id, original=sid) in text
    assert lb("doc.delta_note") in text
    # 2 t of oil more: 2 x 12,888.50 KZT/t (2.98 MRP/t at 4,325 KZT) = 25,777.00
    # A delta line does not record the device/manual split: "—" in both columns.
    assert line_with(text, "EPR-O01 v1", "collection").count("—") == 2
    assert figures(line_with(text, "EPR-O01 v1", "collection"), "en") == [
        Decimal(1),
        Decimal("2.000000"),
        Decimal("12888.50"),
        Decimal("25777.00"),
    ]
    assert figures(line_with(text, lb("doc.total_kzt")), "en") == [Decimal("25777.00")]
    assert lb.of("statement_status", "draft") in text


def _split_of_ledger(session: Session, released: int) -> tuple[Decimal, Decimal]:
    """(device, manual) tonnes read from the tickets themselves: every device ticket,
    and the one manual ticket released (the other stays held, unpaid)."""
    device = manual_t = Decimal(0)
    for device_id, seq, net_g in session.execute(
        select(Ticket.device_id, Ticket.seq, Ticket.net_g)
    ):
        if not is_manual(device_id):
            device += Decimal(net_g) / 1_000_000
        elif seq == released:
            manual_t += Decimal(net_g) / 1_000_000
    return device, manual_t


def test_device_and_manual_tonnes_per_line_are_the_ledgers(tmp_path: Path) -> None:
    """A released manual ticket beside device tickets: each line's device and manual
    tonnes, in the PDF and the XLSX, equal the body's and the tickets' in the ledger;
    a body stored before the split (format 1) prints "—"."""
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    migrate(engine)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        upsert_site(session, SITE, name="Almaty RP 1", region="Almaty", kind="reception_point")
    import_contracts(sessions, contract())
    dev = fake_device(tmp_path, "rp-split-01", start=datetime(2026, 3, 3, 4, tzinfo=UTC))
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "1000.5")])
    with sessions.begin() as session:
        manual.import_export(session, CP1251, "export.csv", site=SITE, actor="ops.anna", now=NOW)
    with sessions.begin() as session:
        holds.resolve_ticket(
            session, f"manual:{SITE}", 1, "release", actor="ops.boris", reason="paper checked"
        )
    with sessions.begin() as session:
        (draft,) = compute_and_store(
            session, ["2026-03"], actor=payment_team(sessions).computer
        ).drafts
        session.flush()
        ledger_split = _split_of_ledger(session, released=1)
        session.expunge(draft)
    engine.dispose()
    body: dict[str, Any] = json.loads(draft.body)
    (ln,) = body["lines"]
    device, manual_t = Decimal(ln["device_tonnes"]), Decimal(ln["manual_tonnes"])
    assert (device, manual_t) == ledger_split == (Decimal("1.0005"), Decimal("3.52"))
    for lang in LANGS:
        lb = Labels(lang)
        text = pdf_text(
            tmp_path, render_statement(draft, fmt="pdf", lang=lang, base_url=BASE), lang
        )
        row_text = line_with(text, f"{ln['contract_id']} v{ln['version']}")
        assert lb("doc.device_tonnes") in text
        assert lb("doc.manual_tonnes") in text
        # tickets, tonnes, device, manual, rate in KZT/t, amount
        assert figures(row_text, lang)[:4] == [Decimal(ln["tickets"]), Decimal(ln["tonnes"]),
                                               device, manual_t]  # fmt: skip
        assert figures(line_with(text, lb("doc.total") + " "), lang)[:3] == [
            Decimal(body["total_tonnes"]), device, manual_t,
        ]  # fmt: skip
        path = tmp_path / f"split-{lang}.xlsx"
        path.write_bytes(render_statement(draft, fmt="xlsx", lang=lang, base_url=BASE))
        ws = load_workbook(path).active
        assert ws is not None
        rows = [list(r) for r in ws.iter_rows(values_only=True)]
        header = next(r for r in rows if r and r[0] == lb("doc.contract"))
        (line_row,) = [r for r in rows if r and r[0] == f"{ln['contract_id']} v{ln['version']}"]
        cells = dict(zip(header, line_row, strict=False))
        assert Decimal(repr(cells[lb("doc.device_tonnes")])) == device
        assert Decimal(repr(cells[lb("doc.manual_tonnes")])) == manual_t

    # The same statement as a format 1 body, without the split: "—", never a guess.
    old = {k: v for k, v in body.items() if k != "format"}
    for line in old["lines"]:
        del line["device_tonnes"], line["manual_tonnes"]
    draft.body = json.dumps(old)
    text = pdf_text(tmp_path, render_statement(draft, fmt="pdf", lang="en", base_url=BASE), "en")
    row_text = line_with(text, f"{ln['contract_id']} v{ln['version']}")
    assert "—" in row_text
    assert figures(row_text, "en")[:2] == [Decimal(ln["tickets"]), Decimal(ln["tonnes"])]
    assert Decimal(ln["tonnes"]) != device  # the split really is absent, not equal
    path = tmp_path / "old.xlsx"
    path.write_bytes(render_statement(draft, fmt="xlsx", lang="en", base_url=BASE))
    ws = load_workbook(path).active
    assert ws is not None
    (line_row,) = [
        r
        for r in ws.iter_rows(values_only=True)
        if r and r[0] == f"{ln['contract_id']} v{ln['version']}"
    ]
    assert line_row[5:7] == ("—", "—")
