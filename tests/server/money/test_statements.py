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
from server.money.statements import SameAccount, TotalMismatch, approve, compute_and_store, pay
from server.money.verification import verify
from server.people.accounts import Role, disable_user
from server.people.permissions import Actor, Permission, PermissionDenied, revoke
from tests.support.accounts import add_user, operator, payment_team
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
    team = payment_team(sessions)
    with sessions.begin() as session:
        result = compute_and_store(session, ["2026-03"], actor=team.computer)
    (draft,) = result.drafts
    with sessions.begin() as session:
        approve(session, draft.id, actor=team.approver, expected_total="546731.72")
    return draft.id


def test_draft_approved_paid_and_frozen(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    sid = setup_month(tmp_path, sessions)
    team = payment_team(sessions)
    with sessions() as session:
        (row,) = stored(session)
        body = json.loads(row.body)
    assert (row.status, row.kind, row.approved_by) == ("approved", "original", "head.of.payments")
    assert (row.computed_by, row.computed_by_id) == ("ops", team.computer.account.id)
    assert row.approved_by_id == team.approver.account.id
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
        approve(session, sid, actor=team.approver, expected_total="546731.72")
    with sessions.begin() as session:
        pay(session, sid, actor=team.payer, reference="PP-2026-0412", expected_total="546731.72")
    with sessions.begin() as session, pytest.raises(StatementError, match="only an approved"):
        pay(session, sid, actor=team.payer, reference="again", expected_total="546731.72")
    # The database itself refuses edits of an approved or paid statement.
    for sql in (
        "UPDATE statements SET total_kzt = '546731.73' WHERE id = :i",
        "UPDATE statements SET payment_ref = 'PP-other' WHERE id = :i",
        "UPDATE statements SET status = 'draft' WHERE id = :i",
        "UPDATE statements SET computed_by_id = NULL WHERE id = :i",
        "UPDATE statements SET paid_by_id = NULL WHERE id = :i",
        "DELETE FROM statements WHERE id = :i",
    ):
        with (
            pytest.raises(DBAPIError, match="an approved statement is frozen"),
            sessions.begin() as session,
        ):
            session.execute(text(sql), {"i": sid})
    # Nothing changed: computing again stores nothing new.
    with sessions.begin() as session:
        again = compute_and_store(session, ["2026-03"], actor=team.computer)
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
    team = payment_team(sessions)
    with sessions.begin() as session:
        result = compute_and_store(session, ["2026-03"], actor=team.computer)
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
        approve(session, adj.id, actor=team.approver, expected_total="25777.00")
    with sessions.begin() as session:
        assert compute_and_store(session, ["2026-03"], actor=team.computer).drafts == []
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
        (adj,) = compute_and_store(
            session, ["2026-03"], actor=payment_team(sessions).computer
        ).drafts
    lines = {(ln["contract_id"], ln["version"]): ln for ln in json.loads(adj.body)["lines"]}
    assert lines[("EPR-T01", 1)]["amount_kzt"] == "-530820.00"
    assert lines[("EPR-T01", 2)]["amount_kzt"] == "600000.00"
    # 1.234567 t × 2.98 × 4,400 = 16,187.64 now, 15,911.72 approved.
    assert lines[("EPR-O01", 1)]["amount_kzt"] == "275.92"
    assert adj.adjusts_id == sid


def test_approving_needs_the_permission_and_a_draft(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    import_contracts(sessions, contract())
    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "100")])
    team = payment_team(sessions)
    with sessions.begin() as session:
        (draft,) = compute_and_store(session, ["2026-03"], actor=team.computer).drafts
    with (
        sessions.begin() as session,
        pytest.raises(PermissionDenied, match="treasury does not hold the permission statements"),
    ):
        approve(session, draft.id, actor=team.payer, expected_total=draft.total_kzt)
    with sessions.begin() as session, pytest.raises(StatementError, match="does not exist"):
        approve(session, 999, actor=team.approver, expected_total="1.00")
    with sessions.begin() as session, pytest.raises(StatementError, match="only an approved"):
        pay(session, draft.id, actor=team.payer, reference="PP-1", expected_total=draft.total_kzt)
    # A newer computation replaces the draft (the old one is kept, superseded).
    ingest(sessions, [weigh(dev, "200")])
    with sessions.begin() as session:
        (newer,) = compute_and_store(session, ["2026-03"], actor=team.computer).drafts
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

    computer = payment_team(sessions).computer

    def run() -> None:
        with sessions.begin() as session:
            compute_and_store(session, ["2026-03"], actor=computer)

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


def one_draft(tmp_path: Path, sessions: sessionmaker[Session], computer: str) -> int:
    """A March draft of 5,308.20 KZT (100 kg of tyres) computed by ``computer``."""
    import_contracts(sessions, contract())
    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "100")])
    actor = operator(sessions, computer, Permission.COMPUTE)
    with sessions.begin() as session:
        (draft,) = compute_and_store(session, ["2026-03"], actor=actor).drafts
    assert draft.total_kzt == Decimal("5308.20")
    return draft.id


def test_four_eyes_three_accounts_for_compute_approve_pay(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    # ops.anna may also approve and pay, ops.bob approve and pay: neither may check
    # their own step; the happy path needs a third account.
    anna = operator(sessions, "ops.anna", Permission.APPROVE, Permission.PAY)
    bob = operator(sessions, "ops.bob", Permission.APPROVE, Permission.PAY)
    carol = operator(sessions, "ops.carol", Permission.PAY, credential="token #3")
    sid = one_draft(tmp_path, sessions, "ops.anna")
    with (
        sessions.begin() as session,
        pytest.raises(
            SameAccount,
            match=rf"^approval must come from another account than the one that computed"
            rf" statement {sid} \(ops\.anna\)$",
        ),
    ):
        approve(session, sid, actor=anna, expected_total="5308.20")
    # A stale or mistyped total is refused, and so is a float-like or grouped one.
    for wrong in ("5308.21", "5308", "0"):
        with sessions.begin() as session, pytest.raises(TotalMismatch, match=r"totals 5308\.20"):
            approve(session, sid, actor=bob, expected_total=wrong)
    for malformed in ("5 308,20", "5308.200", "5e3", ""):
        with sessions.begin() as session, pytest.raises(StatementError, match="expected total"):
            approve(session, sid, actor=bob, expected_total=malformed)
    with sessions.begin() as session:
        approve(session, sid, actor=bob, expected_total=Decimal("5308.2"))
    with (
        sessions.begin() as session,
        pytest.raises(
            SameAccount,
            match=rf"^payment must be recorded by another account than the one that approved"
            rf" statement {sid} \(ops\.bob\)$",
        ),
    ):
        pay(session, sid, actor=bob, reference="PP-1", expected_total="5308.20")
    with sessions.begin() as session, pytest.raises(TotalMismatch, match="payment refused"):
        pay(session, sid, actor=carol, reference="PP-1", expected_total="5308.02")
    with sessions.begin() as session:
        row = pay(session, sid, actor=carol, reference="PP-1", expected_total="5308.20")
        assert (row.status, row.paid_by, row.paid_by_id) == ("paid", "ops.carol", carol.account.id)
    with sessions() as session:
        entries = {
            e.action: (e.actor, json.loads(e.data))
            for e in session.scalars(select(AuditEntry).order_by(AuditEntry.seq))
        }
    who = {a: (actor, d["credential"]) for a, (actor, d) in entries.items() if "credential" in d}
    assert who["statements.computed"] == ("ops.anna", "test")
    assert who["statement.approved"] == ("ops.bob", "test")
    assert who["statement.paid"] == ("ops.carol", "token #3")
    assert entries["statement.approved"][1]["computed_by"] == "ops.anna"
    assert entries["statement.paid"][1]["approved_by"] == "ops.bob"


def test_the_permission_is_read_from_the_ledger_at_each_step(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    sid = one_draft(tmp_path, sessions, "ops.anna")
    bob = operator(sessions, "ops.bob", Permission.APPROVE)
    with sessions.begin() as session:
        revoke(session, "ops.bob", Permission.APPROVE, by="test")
    with sessions.begin() as session, pytest.raises(PermissionDenied, match="does not hold"):
        approve(session, sid, actor=bob, expected_total="5308.20")
    operator(sessions, "ops.bob", Permission.APPROVE)
    with sessions.begin() as session:
        disable_user(session, "ops.bob")
    with sessions.begin() as session, pytest.raises(PermissionDenied, match="disabled"):
        approve(session, sid, actor=bob, expected_total="5308.20")
    # Auditors and contractors hold no permission, whatever an Actor claims.
    auditor = add_user(sessions, "audit1", Role.AUDITOR)
    with sessions.begin() as session, pytest.raises(PermissionDenied, match="only an operator"):
        approve(session, sid, actor=Actor(auditor, "test"), expected_total="5308.20")
    with sessions() as session:
        assert session.get(StoredStatement, sid).status == "draft"  # type: ignore[union-attr]
