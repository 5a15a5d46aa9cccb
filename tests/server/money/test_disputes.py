"""Disputes: a contractor's comment and the operator's decision, visible to both, audited."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.ledger.accounting import AuditEntry
from server.money.disputes import DisputeError, decide, list_disputes, open_dispute
from server.money.holds import scan
from server.money.statements import compute_and_store
from server.people.accounts import NotFound
from server.people.permissions import Permission
from tests.support.accounts import operator
from tests.support.builders import fake_device, register
from tests.support.tickets import BIN, OTHER_BIN, contract, import_contracts, ingest, weigh

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)


def test_dispute_a_ticket_and_a_line(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    import_contracts(sessions, contract())
    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "1200"), weigh(dev, "800")])
    computer = operator(sessions, "ops", Permission.COMPUTE)
    with sessions.begin() as session:
        (draft,) = compute_and_store(session, ["2026-03"], actor=computer).drafts
    with sessions.begin() as session:
        on_ticket = open_dispute(
            session,
            contractor_bin=BIN,
            ticket=(dev.device_id, 2),
            comment="we delivered 850 kg, the scale was not zeroed",
            actor="Eco Tyre: D. Driver",
        )
        on_line = open_dispute(
            session,
            contractor_bin=BIN,
            statement_id=draft.id,
            line="EPR-T01@v1:collection",
            comment="rate should be the amended one",
            actor="Eco Tyre: accountant",
        )
    with sessions.begin() as session:
        decide(session, on_ticket.id, "reject", actor="ops.almaty",
               reason="zero check logged at 08:55, frames show 0.0 kg before the load")  # fmt: skip
        decide(session, on_line.id, "accept", actor="ops.almaty",
               reason="amendment 2 applies from March; adjusting statement follows")  # fmt: skip
    with sessions() as session:
        # The contractor and the operator read the same record.
        mine = [v.to_dict() for v in list_disputes(session, contractor_bin=BIN)]
        everyone = [v.to_dict() for v in list_disputes(session)]
        actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)).all()
        opened = session.scalars(
            select(AuditEntry.data).where(AuditEntry.action == "dispute.opened")
        ).all()
    assert mine == everyone
    assert [(d["ticket"], d["line"], d["status"]) for d in mine] == [
        (f"{dev.device_id}:2", None, "rejected"),
        (None, "EPR-T01@v1:collection", "accepted"),
    ]
    assert mine[0]["comment"] == "we delivered 850 kg, the scale was not zeroed"
    assert mine[0]["decision_reason"].startswith("zero check logged")
    assert mine[0]["decided_by"] == "ops.almaty"
    assert actions[-4:] == ["dispute.opened", "dispute.opened", "dispute.rejected",
                            "dispute.accepted"]  # fmt: skip
    assert json.loads(opened[0])["comment"] == mine[0]["comment"]
    with sessions.begin() as session, pytest.raises(DisputeError, match="already rejected"):
        decide(session, on_ticket.id, "accept", actor="B", reason="second thoughts")
    with sessions.begin() as session, pytest.raises(DisputeError, match="not in statement"):
        open_dispute(session, contractor_bin=BIN, statement_id=draft.id, line="X@v1:collection",
                     comment="?", actor="C")  # fmt: skip
    with sessions.begin() as session, pytest.raises(NotFound, match=f"^statement {draft.id} not"):
        open_dispute(session, contractor_bin=OTHER_BIN, statement_id=draft.id,
                     line="EPR-T01@v1:collection", comment="not mine", actor="C")  # fmt: skip
    with (
        sessions.begin() as session,
        pytest.raises(NotFound, match=r"^ticket rp-none:1 not found$"),
    ):
        open_dispute(session, contractor_bin=BIN, ticket=("rp-none", 1), comment="?", actor="C")
    with sessions.begin() as session, pytest.raises(DisputeError, match="either a ticket or"):
        open_dispute(session, contractor_bin=BIN, comment="vague", actor="C")
    with sessions.begin() as session, pytest.raises(DisputeError, match="check digit"):
        open_dispute(session, contractor_bin="120440012348", ticket=(dev.device_id, 1),
                     comment="?", actor="C")  # fmt: skip


def test_only_the_owner_disputes_a_ticket_and_another_is_told_it_does_not_exist(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """BIN's tickets (paid, and held) are BIN's to dispute; OTHER_BIN, whose own contract
    covers another region, gets word for word what a missing ticket gets."""
    import_contracts(
        sessions,
        contract(),
        contract(contract_id="EPR-T02", contractor_bin=OTHER_BIN, regions="Aktobe"),
    )
    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)
    # Ticket 2 is implausibly heavy for tyres: held, still shown on BIN's statement.
    ingest(sessions, [weigh(dev, "100"), weigh(dev, "26000")])
    with sessions.begin() as session:
        assert scan(session).new_holds == 1

    def refusal(bin_: str, seq: int) -> str:
        with sessions.begin() as session, pytest.raises(NotFound) as info:
            open_dispute(session, contractor_bin=bin_, ticket=(dev.device_id, seq),
                         comment="mine?", actor="rival")  # fmt: skip
        return str(info.value).replace(f":{seq} ", ":N ")

    assert refusal(OTHER_BIN, 1) == refusal(OTHER_BIN, 99) == f"ticket {dev.device_id}:N not found"
    assert refusal(OTHER_BIN, 2) == refusal(OTHER_BIN, 99)
    with sessions.begin() as session:
        paid = open_dispute(session, contractor_bin=BIN, ticket=(dev.device_id, 1),
                            comment="it was 110 kg", actor="eco")  # fmt: skip
        held = open_dispute(session, contractor_bin=BIN, ticket=(dev.device_id, 2),
                            comment="a full truck, not a misreading", actor="eco")  # fmt: skip
    with sessions() as session:
        assert [v.ticket for v in list_disputes(session, contractor_bin=BIN)] == [
            f"{dev.device_id}:1",
            f"{dev.device_id}:2",
        ]
        assert paid.id
        assert held.id
        assert list_disputes(session, contractor_bin=OTHER_BIN) == []
