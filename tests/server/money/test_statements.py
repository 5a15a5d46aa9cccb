"""Recorded statements: draft -> approved -> paid, adjustments, and inputs recorded so
that an approved statement stays reproducible."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import encode
from server.ledger.accounting import AuditEntry, StoredStatement
from server.ledger.db import make_engine, session_factory
from server.ledger.models import Ticket
from server.ledger.signed import signed_columns
from server.money import mrp, statements
from server.money.inputs import StatementError
from server.money.statements import approve, compute_and_store, pay
from server.money.verification import verify
from tests.support.builders import fake_device, register
from tests.support.services import Postgres
from tests.support.tickets import contract, import_contracts, ingest, weigh

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)


def stored(session: Session) -> list[StoredStatement]:
    return list(session.scalars(select(StoredStatement).order_by(StoredStatement.id)))


def setup_month(tmp_path: Path, sessions: sessionmaker[Session]) -> int:
    """A tyre lot (10 t cap) and an oil lot in MRP/t; March deliveries; the March
    statement computed and approved. Returns the approved statement's id."""
    import_contracts(
        sessions,
        contract(),
        contract(contract_id="EPR-O01", lot="2", category="used_oil", rate="2.98",
                 rate_unit="MRP/t", cap_t="400"),
    )  # fmt: skip
    with sessions.begin() as session:
        mrp.store(
            session,
            mrp.MrpTable((mrp.MrpRow(date(2026, 1, 1), Decimal(4325), "to be checked"),)),
            source="test",
            actor="ops",
        )
    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)
    ingest(
        sessions,
        [
            weigh(dev, "6000"),
            weigh(dev, "5000.5"),
            weigh(dev, "1234.567", category="used_oil"),
            weigh(dev, "0.2"),  # held: implausible
        ],
    )
    with sessions.begin() as session:
        result = compute_and_store(session, ["2026-03"], actor="ops")
    (draft,) = result.drafts
    with sessions.begin() as session:
        approve(session, draft.id, actor="head.of.payments")
    return draft.id


def test_draft_approved_paid_and_frozen(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    sid = setup_month(tmp_path, sessions)
    with sessions() as session:
        (row,) = stored(session)
        body = json.loads(row.body)
    assert (row.status, row.kind, row.approved_by) == ("approved", "original", "head.of.payments")
    # Tyres: 10 t paid of 11.0005 t (cap); oil: 1.234567 t × 2.98 MRP × 4,325.
    assert [(ln["contract_id"], ln["tonnes"], ln["amount_kzt"]) for ln in body["lines"]] == [
        ("EPR-O01", "1.234567", "15911.72"),
        ("EPR-T01", "10", "530820.00"),
    ]
    assert body["lines"][0]["rate_kzt_per_t"] == "12888.50"
    assert body["over_cap"][0]["tonnes"] == "1.0005"
    assert [h["seq"] for h in body["held"]] == [4]
    assert body["total_kzt"] == "546731.72"
    inputs = body["inputs"]
    assert inputs["ticket_high_water"] == 4
    assert inputs["contractor_contracts"] == ["EPR-O01@v1", "EPR-T01@v1"]
    assert (inputs["mrp_table_version"], inputs["hold_rules_version"]) == (1, 1)
    assert inputs["rounding_policy"] == "line-half-up-2dp/v1"
    assert row.evidence_sha256 is not None
    with sessions.begin() as session, pytest.raises(StatementError, match="only a draft"):
        approve(session, sid, actor="B")
    with sessions.begin() as session:
        pay(session, sid, actor="Treasury", reference="PP-2026-0412")
    with sessions.begin() as session, pytest.raises(StatementError, match="only an approved"):
        pay(session, sid, actor="Treasury", reference="again")
    # The database itself refuses edits of an approved or paid statement.
    for sql in (
        "UPDATE statements SET total_kzt = '546731.73' WHERE id = :i",
        "UPDATE statements SET payment_ref = 'PP-other' WHERE id = :i",
        "UPDATE statements SET status = 'draft' WHERE id = :i",
        "DELETE FROM statements WHERE id = :i",
    ):
        with (
            pytest.raises(DBAPIError, match="an approved statement is frozen"),
            sessions.begin() as session,
        ):
            session.execute(text(sql), {"i": sid})
    # Nothing changed: computing again stores nothing new.
    with sessions.begin() as session:
        again = compute_and_store(session, ["2026-03"], actor="ops")
    assert (again.drafts, again.unchanged) == ([], 1)
    with sessions() as session:
        actions = [e.action for e in session.scalars(select(AuditEntry).order_by(AuditEntry.seq))]
        assert verify(session).ok
    assert actions.count("statement.approved") == 1
    assert actions.count("statement.paid") == 1
    assert "contracts.imported" in actions
    assert "mrp.loaded" in actions


def test_a_late_ticket_makes_an_adjusting_statement(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    sid = setup_month(tmp_path, sessions)
    late = fake_device(tmp_path, "rp-late-01", start=T0 + timedelta(days=3))
    register(sessions, late)
    # Weighed on 5 March by a device that was offline; received in April.
    ingest(sessions, [weigh(late, "2000", category="used_oil")],
           received_at=datetime(2026, 4, 2, tzinfo=UTC))  # fmt: skip
    with sessions.begin() as session:
        result = compute_and_store(session, ["2026-03"], actor="ops")
    (adj,) = result.drafts
    body = json.loads(adj.body)
    assert (adj.kind, adj.adjusts_id) == ("adjustment", sid)
    assert body["lines"] == [
        {"contract_id": "EPR-O01", "version": 1, "stage": "collection", "tickets": 1,
         "tonnes": "2.000000", "amount_kzt": "25777.00"},
    ]  # fmt: skip
    assert body["total_kzt"] == "25777.00"
    assert body["recomputed"]["total_kzt"] == "572508.72"
    with sessions.begin() as session:
        approve(session, adj.id, actor="head.of.payments")
    with sessions.begin() as session:
        assert compute_and_store(session, ["2026-03"], actor="ops").drafts == []
    with sessions() as session:
        report = verify(session)
    assert report.ok, report.problems
    assert report.statements == 2


def test_recorded_inputs_keep_an_approved_statement_reproducible(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    sid = setup_month(tmp_path, sessions)
    # After approval: the tyre lot is amended (new rate), a new MRP value is loaded.
    import_contracts(sessions, contract(rate="60000.00"), contract(
        contract_id="EPR-O01", lot="2", category="used_oil", rate="2.98", rate_unit="MRP/t",
        cap_t="400"))  # fmt: skip
    with sessions.begin() as session:
        mrp.store(
            session,
            mrp.MrpTable((mrp.MrpRow(date(2026, 1, 1), Decimal(4400)),)),
            source="test",
            actor="ops",
        )
    with sessions() as session:
        assert verify(session).ok
    with sessions.begin() as session:
        (adj,) = compute_and_store(session, ["2026-03"], actor="ops").drafts
    lines = {(ln["contract_id"], ln["version"]): ln for ln in json.loads(adj.body)["lines"]}
    assert lines[("EPR-T01", 1)]["amount_kzt"] == "-530820.00"
    assert lines[("EPR-T01", 2)]["amount_kzt"] == "600000.00"
    # 1.234567 t × 2.98 × 4,400 = 16,187.64 now, 15,911.72 approved.
    assert lines[("EPR-O01", 1)]["amount_kzt"] == "275.92"
    assert adj.adjusts_id == sid


def test_approving_needs_a_name_and_a_draft(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    import_contracts(sessions, contract())
    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "100")])
    with sessions.begin() as session:
        (draft,) = compute_and_store(session, ["2026-03"], actor="ops").drafts
    with sessions.begin() as session, pytest.raises(StatementError, match="must be named"):
        approve(session, draft.id, actor=" ")
    with sessions.begin() as session, pytest.raises(StatementError, match="does not exist"):
        approve(session, 999, actor="A")
    with sessions.begin() as session, pytest.raises(StatementError, match="only an approved"):
        pay(session, draft.id, actor="T", reference="PP-1")
    # A newer computation replaces the draft (the old one is kept, superseded).
    ingest(sessions, [weigh(dev, "200")])
    with sessions.begin() as session:
        (newer,) = compute_and_store(session, ["2026-03"], actor="ops").drafts
    with sessions() as session:
        assert [r.status for r in stored(session)] == ["superseded", "draft"]
        assert statements.list_statements(session) == [session.get(StoredStatement, newer.id)]


@pytest.mark.postgres
def test_a_run_waits_for_tickets_still_in_flight(tmp_path: Path, postgres: Postgres) -> None:
    # Two workers: one holds id N+1 uncommitted while another commits N+2. A run that
    # recorded N+2 as its high-water mark would miss N+1 and later fail verification.
    engine = make_engine(postgres.fresh_database())
    sessions = session_factory(engine)
    import_contracts(sessions, contract())
    slow, fast = fake_device(tmp_path, "rp-slow-01", T0), fake_device(tmp_path, "rp-fast-01", T0)
    register(sessions, slow)
    register(sessions, fast, site_id="almaty-rp-02")
    ingest(sessions, [weigh(slow, "1000")])
    late = weigh(slow, "2000")
    in_flight = sessions()
    in_flight.begin()
    in_flight.add(
        Ticket(
            **signed_columns(late),
            payload=encode(late),
            received_at=late.weighed_at + timedelta(seconds=5),
            chain_ok=True,
        )
    )
    in_flight.flush()  # its id is drawn now, below the next worker's
    ingest(sessions, [weigh(fast, "3000", site_id="almaty-rp-02")])

    def run() -> None:
        with sessions.begin() as session:
            compute_and_store(session, ["2026-03"], actor="ops")

    runner = threading.Thread(target=run)
    runner.start()
    runner.join(timeout=1.5)
    assert runner.is_alive(), "the run did not wait for the open insert"
    in_flight.commit()
    in_flight.close()
    runner.join(timeout=30)
    assert not runner.is_alive()
    with sessions() as session:
        (row,) = stored(session)
        body = json.loads(row.body)
        assert Decimal(body["total_tonnes"]) == Decimal(6)
        last_id = session.scalar(select(func.max(Ticket.id)))
        assert body["inputs"]["ticket_high_water"] == last_id
        assert verify(session).ok
    engine.dispose()
