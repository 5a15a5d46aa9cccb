"""Manual tickets: weighbridge exports and paper tickets, held until another operator
releases them, and the device/manual split on every statement line."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from server.fleet.registry import upsert_site
from server.ledger.manual import ManualTicket, is_manual
from server.ledger.models import Ticket
from server.money import holds, manual
from server.money.evidence import Signature, evidence_for
from server.money.statements import compute_and_store, statement_for
from server.money.verification import verify
from tests.support.accounts import payment_team
from tests.support.builders import fake_device, register
from tests.support.tickets import contract, import_contracts, ingest, weigh

SITE = "almaty-rp-01"
NOW = datetime(2026, 4, 1, tzinfo=UTC)
EXAMPLE = Path(__file__).parents[3] / "docs" / "examples" / "weighbridge-export.csv"

CP1251 = (
    "Номер талона;Дата/время;Категория;Брутто;Тара;Нетто;Госномер;БИН\r\n"
    "А-101;02.03.2026 09:15;tyres;14 820,0;11300;3520;123 ABC 02;120440012349\r\n"
    "А-102;02.03.2026 11:40;tyres;13075,5;11280;1795,5;;\r\n"
).encode("cp1251")


@pytest.fixture
def ledger(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with sessions.begin() as session:
        upsert_site(session, SITE, name="Almaty RP 1", region="Almaty", kind="reception_point")
    import_contracts(sessions, contract())
    return sessions


def _import(
    sessions: sessionmaker[Session],
    data: bytes,
    name: str,
    actor: str = "ops.anna",
    site: str | None = SITE,
) -> manual.ManualResult:
    with sessions.begin() as session:
        return manual.import_export(session, data, name, site=site, actor=actor, now=NOW)


def _count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Ticket)) or 0)


def test_cp1251_semicolons_import_once_held_with_provenance(
    ledger: sessionmaker[Session],
) -> None:
    result = _import(ledger, CP1251, "export.csv")
    assert len(result.created) == 2
    assert result.unchanged == 0
    again = _import(ledger, CP1251, "export.csv")
    assert again.created == []
    assert again.unchanged == 2
    with ledger() as session:
        tickets = session.scalars(select(Ticket).order_by(Ticket.seq)).all()
        assert [(t.device_id, t.seq, t.net_g) for t in tickets] == [
            ("manual:almaty-rp-01", 1, 3_520_000),
            ("manual:almaty-rp-01", 2, 1_795_500),
        ]
        assert tickets[0].weighed_at == datetime(2026, 3, 2, 4, 15, tzinfo=UTC)  # 09:15 local
        assert tickets[1].prev_hash == tickets[0].hash  # the site's manual chain
        rows = session.scalars(select(ManualTicket).order_by(ManualTicket.id)).all()
        assert [(m.ticket_no, m.source_name, m.source_line, m.entered_by) for m in rows] == [
            ("А-101", "export.csv", 2, "ops.anna"),
            ("А-102", "export.csv", 3, "ops.anna"),
        ]
        assert rows[0].vehicle_plate == "123 ABC 02"
        assert rows[0].contractor_bin == "120440012349"
        for t in tickets:
            assert holds.evidence_problem(t, None) is None
        open_ = holds.list_holds(session, status="open")
        assert {(h.seq, h.reason) for h in open_} == {
            (1, "manual_evidence"),
            (2, "manual_evidence"),
        }
        st = statement_for(session, "120440012349", "2026-03")
        assert st is not None
        assert st.total_kzt == 0
        assert len(st.held) == 2


def test_xlsx_export(ledger: sessionmaker[Session]) -> None:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["Ticket number", "Date/time", "Category", "Net kg", "Vehicle plate"])
    ws.append(["77", datetime(2026, 3, 5, 14, 30), "tyres", 812.25, "456 XYZ 02"])
    ws.append([])
    ws.append(["78", datetime(2026, 3, 5, 15, 0), "tyres", 1000, None])
    buf = io.BytesIO()
    wb.save(buf)
    result = _import(ledger, buf.getvalue(), "weighbridge.xlsx")
    assert len(result.created) == 2
    with ledger() as session:
        nets = session.scalars(select(Ticket.net_g).order_by(Ticket.seq)).all()
        lines = session.scalars(select(ManualTicket.source_line).order_by(ManualTicket.id)).all()
    assert list(nets) == [812_250, 1_000_000]
    assert list(lines) == [2, 4]


def test_documented_example_imports(ledger: sessionmaker[Session]) -> None:
    with ledger.begin() as session:
        result = manual.import_export(
            session, EXAMPLE.read_bytes(), EXAMPLE.name, site=None, actor="ops", now=NOW
        )
    assert len(result.created) == 3


def test_hostile_file_imports_nothing_and_names_every_problem(
    ledger: sessionmaker[Session],
) -> None:
    bad = (
        b"ticket_no,weighed_at,site,category,net_kg,vehicle_plate\n"
        b"1,2026-02-30 10:00,almaty-rp-01,tyres,100,\n"  # no 30 February
        b"2,2026-03-02 10:00,almaty-rp-01,tyres,-5,\n"
        b"3,2026-03-02 10:00,almaty-rp-01,tyres,250000,\n"
        b"4,2026-03-02 10:00,nowhere-01,tyres,100,\n"
        b"5,2026-03-02 10:00,almaty-rp-01,tyers,100,\n"
        b"6,2026-03-02 10:00,almaty-rp-01,tyres,100,=cmd|' /C calc'!A0\n"
        b"7,2026-03-02 10:00,almaty-rp-01,tyres,100,\n"
        b"7,2026-03-02 10:05,almaty-rp-01,tyres,100,\n"
        b"8,2030-01-01 10:00,almaty-rp-01,tyres,100,\n"
    )
    with pytest.raises(manual.ManualProblems) as err:
        _import(ledger, bad, "bad.csv", site=None)
    problems = err.value.problems
    assert problems == [
        "bad.csv:2:weighed_at: '2026-02-30 10:00' is not a date and time (expected"
        " YYYY-MM-DD HH:MM[:SS] or DD.MM.YYYY HH:MM[:SS], local time)",
        "bad.csv:3:net_kg: -5 kg is negative",
        "bad.csv:4:net_kg: 250000 kg is more than any weighbridge weighs (100000 kg)",
        "bad.csv:5:site: 'nowhere-01' is not a registered site",
        problems[4],
        "bad.csv:7:vehicle_plate: \"=cmd|' /C calc'!A0\" starts like a spreadsheet formula:"
        " not accepted",
        "bad.csv:9:ticket_no: 7 repeats line 8",
        "bad.csv:10:weighed_at: 2030-01-01 10:00 is in the future",
    ]
    assert problems[4].startswith("bad.csv:6:category: 'tyers' is not a known category")
    assert _count(ledger) == 0
    weights = (
        b"ticket_no;weighed_at;category;gross_kg;tare_kg;net_kg\n"
        b"1;2026-03-02 10:00;tyres;100;40;50\n"
        b"2;2026-03-02 10:00;tyres;100;140;\n"
        b"3;2026-03-02 10:00;tyres;100;;120\n"
        b"4;2026-03-02 10:00;tyres;0,0005;;\n"
        b"5;2026-03-02 10:00;tyres;;;0\n"
    )
    with pytest.raises(manual.ManualProblems) as err:
        _import(ledger, weights, "w.csv")
    assert err.value.problems == [
        "w.csv:2:net_kg: net 50 kg is not gross − tare (60 kg)",
        "w.csv:3:net_kg: the net weight must be above 0 kg",
        "w.csv:4:net_kg: net above gross",
        "w.csv:5:gross_kg: 0,0005 kg is finer than a gram (3 decimals at most)",
        "w.csv:6:net_kg: the net weight must be above 0 kg",
    ]


def test_missing_columns_and_other_values_refused(ledger: sessionmaker[Session]) -> None:
    with pytest.raises(manual.ManualProblems) as err:
        _import(ledger, b"number;when\n1;2\n", "short.csv")
    assert err.value.problems[0] == (
        "short.csv:1:when: unknown column (expected one of category, contractor_bin,"
        " gross_kg, net_kg, site, tare_kg, ticket_no, vehicle_plate, weighed_at)"
    )
    _import(ledger, CP1251, "export.csv")
    changed = CP1251.replace(b"3520;", b"3600;").replace(b"11300;", b"11220;")
    with pytest.raises(manual.ManualProblems, match="entered before"):
        _import(ledger, changed, "export-v2.csv")
    assert _count(ledger) == 2


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
FORM = {
    "ticket_no": "P-9",
    "weighed_at": "2026-03-10 12:00",
    "category": "tyres",
    "gross_kg": "5000",
    "tare_kg": "3000",
}


def test_paper_ticket_with_scan(ledger: sessionmaker[Session]) -> None:
    with ledger.begin() as session:
        result = manual.enter_paper(
            session, FORM, site=SITE, scan=PDF, scan_name="scan.pdf", actor="ops", now=NOW
        )
    with ledger() as session:
        m = session.scalars(select(ManualTicket)).one()
        assert (m.source, m.source_name, m.source_line) == ("form", "form", None)
        stored = manual.attachment(session, str(m.attachment_sha256))
        assert stored is not None
        assert stored.content == PDF
        assert stored.media_type == "application/pdf"
        t = session.get(Ticket, result.created[0])
        assert t is not None
        assert t.net_g == 2_000_000
        e = evidence_for(session, t.id)
        assert e is not None
        assert (e.signature, e.intact, e.manual and e.manual.ticket_no) == (
            Signature.MANUAL,
            True,
            "P-9",
        )
        assert is_manual(t.device_id)


@pytest.mark.parametrize(
    ("scan", "why"),
    [
        (b"MZ\x90\x00" + b"\x00" * 100, "not a PDF, JPEG or PNG"),  # a renamed .exe
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * (10 * 1024 * 1024), "more than the 10 MB"),
        (b"", "attach the scan"),
    ],
)
def test_paper_ticket_refuses_bad_scans(
    ledger: sessionmaker[Session], scan: bytes, why: str
) -> None:
    with pytest.raises(manual.ManualProblems, match=why), ledger.begin() as session:
        manual.enter_paper(
            session, FORM, site=SITE, scan=scan, scan_name="photo.jpg", actor="ops", now=NOW
        )
    assert _count(ledger) == 0


def test_release_needs_another_operator_then_line_splits_device_and_manual(
    tmp_path: Path, ledger: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path, "rp-manual-01", start=datetime(2026, 3, 3, 4, tzinfo=UTC))
    register(ledger, dev)
    ingest(ledger, [weigh(dev, "1000.5")])
    _import(ledger, CP1251, "export.csv", actor="ops.anna")
    with ledger.begin() as session:
        with pytest.raises(holds.HoldError, match="another operator must release"):
            holds.resolve_ticket(
                session, "manual:almaty-rp-01", 1, "release", actor="ops.anna", reason="mine"
            )
        holds.resolve_ticket(
            session, "manual:almaty-rp-01", 1, "release", actor="ops.boris",
            reason="paper ticket and weighbridge log checked",
        )  # fmt: skip
    with ledger() as session:
        st = statement_for(session, "120440012349", "2026-03")
    assert st is not None
    (line,) = st.lines
    assert line.tonnes == Decimal("4.5205")
    assert (line.device_tonnes, line.manual_tonnes) == (Decimal("1.0005"), Decimal("3.52"))
    assert st.canonical()["lines"][0]["manual_tonnes"] == "3.52"
    assert [h.seq for h in st.held] == [2]  # the other manual ticket is still held
    team = payment_team(ledger)
    with ledger.begin() as session:
        (draft,) = compute_and_store(session, ["2026-03"], actor=team.computer).drafts
    with ledger() as session:
        report = verify(session)
    assert report.ok, report.problems
    assert draft.id


def test_statements_stored_before_the_split_still_verify(
    tmp_path: Path, ledger: sessionmaker[Session]
) -> None:
    """A format 1 body (no device/manual split) recomputes in format 1."""
    import json

    from server.ledger.audit import canonical_json
    from server.money.statements import body_statement, sha256_hex

    dev = fake_device(tmp_path, "rp-manual-02", start=datetime(2026, 3, 3, 4, tzinfo=UTC))
    register(ledger, dev)
    ingest(ledger, [weigh(dev, "700")])
    team = payment_team(ledger)
    with ledger.begin() as session:
        (draft,) = compute_and_store(session, ["2026-03"], actor=team.computer).drafts
        body = json.loads(draft.body)
        assert body["format"] == 2
        assert body["lines"][0]["device_tonnes"] == "0.7"
        old = {k: v for k, v in body.items() if k != "format"}
        for ln in old["lines"]:
            del ln["device_tonnes"], ln["manual_tonnes"]
        assert body_statement(old).canonical() == old
        draft.body = canonical_json(old)
        draft.sha256 = sha256_hex(draft.body)
    with ledger() as session:
        report = verify(session)
    assert report.ok, report.problems


def test_manual_tables_are_append_only(ledger: sessionmaker[Session]) -> None:
    _import(ledger, CP1251, "export.csv")
    for sql in ("UPDATE manual_tickets SET ticket_no = 'X'", "DELETE FROM manual_tickets"):
        with pytest.raises(DBAPIError, match="append-only"), ledger.begin() as session:
            session.execute(text(sql))
    with pytest.raises(DBAPIError, match="append-only"), ledger.begin() as session:
        session.execute(text("UPDATE tickets SET net_g = 1 WHERE device_id LIKE 'manual:%'"))
