"""Where contracts stand: the statements' own figures summed per contract, the monthly
previews equal to one-month previews, and reused previews never stale."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.ledger.models import Ticket
from server.money import previews
from server.money.holds import Finding, record
from server.money.standing import standings
from server.money.statements import monthly_previews, statement_for
from server.people.accounts import NotFound, Scope
from tests.support.accounts import BIN_A, BIN_B
from tests.support.builders import fake_device, register
from tests.support.tickets import ingest, weigh
from tests.support.web import PERIOD, T0, seed

TODAY = date(2026, 5, 20)


def test_standing_is_the_sum_of_the_statements(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    seed(sessions, tmp_path)
    with sessions() as session:
        found = {
            s.terms.contract_id: s for s in standings(session, Scope.everything(), today=TODAY)
        }
        months = monthly_previews(session, ["2026-05", "2026-04", PERIOD])
        for st in months:  # one computation gives each month's preview exactly
            alone = statement_for(session, st.contractor_bin, st.period)
            assert alone is not None
            assert alone.hash == st.hash
        a = statement_for(session, BIN_A, PERIOD)
        mine = standings(session, Scope(BIN_B), today=TODAY)
        with pytest.raises(NotFound):
            standings(session, Scope(BIN_B), today=TODAY, contract_id="EPR-A1")
    assert a is not None
    capped = found["EPR-A1"]
    assert (capped.paid_t, capped.paid_kzt, capped.over_cap_t) == (
        a.lines[0].tonnes,
        a.total_kzt,
        a.over_cap[0].tonnes,
    )
    assert capped.remaining_t == 0
    assert capped.cap_reached
    assert capped.through == "2026-05"
    assert [m.period for m in capped.months] == [
        "2026-01",
        "2026-02",
        "2026-03",
        "2026-04",
        "2026-05",
    ]
    assert capped.months[-1].paid_to_date_t == Decimal(1)
    assert [s.terms.contract_id for s in mine] == ["EPR-B1"]
    assert mine[0].remaining_t == Decimal("49.4945")


def test_a_reused_preview_is_never_stale(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    seed(sessions, tmp_path)
    with sessions() as session:
        (before,) = standings(session, Scope(BIN_B), today=TODAY)
        (again,) = standings(session, Scope(BIN_B), today=TODAY)
    assert again.paid_t == before.paid_t
    # A new ticket changes the inputs: the figures follow at once.
    dev = fake_device(tmp_path, "rp-aktobe-02", start=T0)
    register(sessions, dev, site_id="aktobe-rp-02", region="Aktobe")
    ingest(sessions, [weigh(dev, "100", site_id="aktobe-rp-02")])
    with sessions() as session:
        (after,) = standings(session, Scope(BIN_B), today=TODAY)
    assert before.paid_t is not None
    assert after.paid_t == before.paid_t + Decimal("0.1")
    # So does a hold: the held 100 kg leave the figures.
    with sessions.begin() as session:
        (ticket,) = session.scalars(select(Ticket.id).where(Ticket.device_id == dev.device_id))
        record(
            session,
            [Finding(ticket, "implausible_weight", "check")],
            rules_version=None,
            now=datetime.now(UTC),
        )
    with sessions() as session:
        (held,) = standings(session, Scope(BIN_B), today=TODAY)
    assert held.paid_t == before.paid_t


def test_previews_keep_only_the_last_few() -> None:
    kept = previews.Previews(size=2)
    keys = [(str(i), TODAY, "r", "f") for i in range(3)]
    for k in keys:
        kept.put(k, (None, None, None))
    assert kept.get(keys[0]) is None
    assert kept.get(keys[2]) is not None
