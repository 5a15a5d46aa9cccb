"""`make demo` stays working: the whole fleet on the embedded broker, nothing lost, every
ticket at its scripted time, no clock alarm, the fleet page's outbox the devices' own."""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from firmware_sim import demo
from server.fleet.overview import fleet
from server.ledger.alarms import AlarmRecord
from server.ledger.db import make_engine, session_factory
from server.ledger.models import Ticket
from server.money.statements import approve, compute_and_store, pay, statements_for
from server.people.accounts import Account, find_user
from server.people.permissions import Actor
from server.people.tokens import resolve_token
from tests.support.builders import fake_device, register
from tests.support.tickets import contract, import_contracts, ingest, weigh


def test_demo_month_ends_with_a_clean_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo.main(["--workdir", str(tmp_path), "--timeout", "90"]) == 0
    out = capsys.readouterr().out
    match = re.search(
        r"^summary: weighings=(\d+) tonnes=([\d.]+) statements=(\d+) amount_kzt=([\d.]+)"
        r" lost=(\d+) duplicates=(\d+)$",
        out,
        re.MULTILINE,
    )
    assert match, out[-2000:]
    weighings, _, statements, amount, lost, duplicates = match.groups()
    assert int(weighings) == 208  # every scripted delivery in firmware_sim/data/demo_fleet.csv
    assert int(statements) == 4
    assert float(amount) > 0
    assert (lost, duplicates) == ("0", "0")
    assert "over cap, unpaid" in out
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    sessions = session_factory(engine)
    with sessions() as session:
        tickets = Counter(
            (r.device_id, r.net_g, r.weighed_at)
            for r in session.execute(select(Ticket.device_id, Ticket.net_g, Ticket.weighed_at))
        )
        # Every ticket is a scripted delivery, at its scripted time: none shares it.
        script = demo.scripted("2026-10", 2026)
        assert tickets == Counter(
            (device_id, int(ld.kg * 1000), ld.at)
            for device_id, loads in script.items()
            for ld in loads
        )
        assert len({at for _, _, at in tickets}) == 208
        # No clock alarm: the scenario plants none.
        codes = set(session.scalars(select(AlarmRecord.code)))
        assert not codes & {"clock_drift", "clock_ahead"}, codes
        # The fleet page's outbox is each device's own, read from its journal.
        agents = [d for d in fleet(session) if d.device_id in script]
        assert len(agents) == len(script)
        # (The demo's container sensors replay readings through the handler: no journal.)
        for d in agents:
            journal = tmp_path / "devices" / d.device_id / "journal.sqlite3"
            with sqlite3.connect(journal) as db:
                (unacked,) = db.execute(
                    "SELECT count(*) FROM weighing WHERE acked_at IS NULL"
                ).fetchone()
            assert d.health["outbox_depth"] == unacked == 0, d.device_id
            assert d.health["oldest_unacked_s"] == 0, d.device_id
    engine.dispose()


def test_serve_accounts_run_the_payment_cycle_with_four_eyes(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """``--serve`` prints logins for three operators (one computes, one approves, one
    pays), an auditor and the contractors."""
    import_contracts(sessions, contract())
    dev = fake_device(tmp_path, start=datetime(2026, 3, 2, 4, 0, tzinfo=UTC))
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "1000")])
    with sessions() as session:
        previews = statements_for(session, "2026-03")
    logins, token = demo.demo_accounts(sessions, previews)
    assert [(name, what) for name, _, what in logins] == [
        ("demo-operator", "accounts.admin, statements.compute"),
        ("demo-approver", "statements.approve"),
        ("demo-payer", "statements.pay"),
        ("demo-auditor", "auditor: reads statements, evidence, audit log"),
        ("demo-contractor-1", "contractor Eco Tyre Recycling LLP"),
    ]
    with sessions.begin() as session:
        found = resolve_token(session, token)
        assert found is not None
        assert found[0].username == "demo-operator"
        actors = {
            name: Actor(Account.of(user), "password")
            for name, _, _ in logins
            if (user := find_user(session, name)) is not None
        }
        (draft,) = compute_and_store(session, ["2026-03"], actor=actors["demo-operator"]).drafts
    with sessions.begin() as session:
        approve(session, draft.id, actor=actors["demo-approver"], expected_total=draft.total_kzt)
    with sessions.begin() as session:
        row = pay(
            session,
            draft.id,
            actor=actors["demo-payer"],
            reference="PP-DEMO-1",
            expected_total=draft.total_kzt,
        )
        assert (row.computed_by, row.approved_by, row.paid_by) == (
            "demo-operator",
            "demo-approver",
            "demo-payer",
        )


def test_export_writes_documents_and_the_register(tmp_path: Path) -> None:
    """``--export DIR``: the month approved by two accounts, every statement's PDF and
    XLSX in three languages, the register with every demo contractor's valid IBAN.
    (SQLite only: the documents are tested on both databases in tests/server.)"""
    from server.ledger.db import make_engine, migrate, session_factory
    from server.money.bank import iban_problem
    from tests.support.accounts import operator

    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    migrate(engine)
    sessions = session_factory(engine)

    banks = demo.demo_banks()
    assert len(banks) == 4
    assert all(iban_problem(iban) is None for _, iban in banks)
    import_contracts(sessions, contract())
    dev = fake_device(tmp_path, start=datetime(2026, 3, 2, 4, 0, tzinfo=UTC))
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "1000")])
    for name, permissions in demo.DEMO_OPERATORS:  # as --serve makes them, cheaper hashes
        operator(sessions, name, *permissions)
    out = tmp_path / "export"
    written = demo.export_month(
        sessions, "2026-03", out, demo.demo_actors(sessions), base_url="http://127.0.0.1:8000"
    )
    names = sorted(p.name for p in written)
    assert len(names) == 6 + 5  # one statement: 2 formats x 3 languages; the register: 5
    assert all(p.stat().st_size > 0 for p in written)
    csv_text = (out / "register-2026-03.csv").read_text("utf-8")
    (bin_, iban) = next(b for b in banks if b[0] == contract()["contractor_bin"])
    assert f",approved,{bin_},Eco Tyre Recycling LLP,{iban}," in csv_text
    assert "no_bank_account" not in csv_text
    engine.dispose()
