"""Eligibility holds on real signed tickets: every rule, the scan, resolution, statements."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from edge.evidence import DeviceKey
from server.fleet.registry import register_device, upsert_site
from server.ledger.accounting import AuditEntry
from server.ledger.db import make_engine, migrate, session_factory
from server.ledger.models import FillEvent, Scale
from server.money import holds
from server.money.statements import statement_for
from tests.support.builders import FakeDevice, fake_device, register
from tests.support.tamper import bypassing_append_only
from tests.support.tickets import BIN, contract, forge, import_contracts, ingest, weigh

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)  # 09:00 in Almaty


def reasons(session: Session) -> dict[tuple[str, int], set[str]]:
    out: dict[tuple[str, int], set[str]] = {}
    for h in holds.list_holds(session):
        out.setdefault((h.device_id, h.seq), set()).add(h.reason)
    return out


def test_each_rule_holds_its_ticket(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    dev = fake_device(tmp_path, "rp-hold-01", start=T0)
    box = fake_device(tmp_path, "rp-box-01", start=T0)
    bin_ = fake_device(tmp_path, "rp-bin-01", start=T0)  # weighs container pickups
    register(sessions, dev)
    register(sessions, box)
    register(sessions, bin_, site_id="almaty-c-01")
    with sessions.begin() as session:
        upsert_site(session, "almaty-c-01", name="container", region="Almaty", kind="container")
        sensor = DeviceKey.generate().public_key_b64()
        register_device(session, "lvl-c-01", site_id="almaty-c-01", public_key=sensor)
        session.add(Scale(scale_id="s-old", device_id=dev.device_id,
                          verified_until=date(2026, 3, 1)))  # fmt: skip
        session.add(Scale(scale_id="s1", device_id=dev.device_id,
                          verified_until=date(2027, 1, 1)))  # fmt: skip
        session.add(
            FillEvent(device_id="lvl-c-01", seq=1, container_id="c-01", event="emptied",
                      measured_at=T0 + timedelta(hours=5), fill_pct=Decimal("3.5"),
                      received_at=T0 + timedelta(hours=5))
        )  # fmt: skip
    w = [
        weigh(dev, "120.5", at=T0),  # 1: fine
        weigh(dev, "300", scale_id="s-old"),  # 2: certificate expired the day before
        weigh(dev, "0.5"),  # 3: implausible for tyres (2 kg at least)
        weigh(bin_, "80", at=T0, site_id="almaty-c-01", scale_id="c1",
              category="packaging_paper"),  # bin 1: no drop near
        weigh(bin_, "90", at=T0 + timedelta(hours=5, minutes=30), site_id="almaty-c-01",
              scale_id="c1", category="packaging_paper"),  # bin 2: the emptying 30 min before: fine
        weigh(dev, "4950", at=T0 + timedelta(days=1)),  # 4-6: just under 5,000 kg thrice
        weigh(dev, "4960", at=T0 + timedelta(days=2)),
        weigh(dev, "4999.5", at=T0 + timedelta(days=3)),
        weigh(dev, "4950", at=T0 + timedelta(days=20)),  # 7: just under, but alone
    ]  # fmt: skip
    unsynced = weigh(dev, "200", at=T0 + timedelta(days=21), synced=False)  # 8
    ingest(sessions, w)
    # The device clock was an hour off: received an hour after its own time.
    ingest(sessions, [unsynced], delay=timedelta(hours=1))
    # A validly signed record whose chain does not link, sent before its predecessor.
    b1 = weigh(box, "100", at=T0, scale_id="b1")  # dev's s1 would be another device's scale
    b2 = weigh(box, "110", scale_id="b1")
    b3 = weigh(box, "120", scale_id="b1")
    ingest(sessions, [b1, b3])
    ingest(sessions, [forge(box, b2, net_kg="111", gross_kg="111")])
    with sessions.begin() as session:
        result = holds.scan(session, actor="ops")
    assert result.scanned == 13
    with sessions() as session:
        found = reasons(session)
        views = holds.list_holds(session)
    assert found == {
        (dev.device_id, 2): {"scale_verification_expired"},
        (dev.device_id, 3): {"implausible_weight"},
        (bin_.device_id, 1): {"no_fill_drop"},
        (dev.device_id, 4): {"near_cap_boundary"},
        (dev.device_id, 5): {"near_cap_boundary"},
        (dev.device_id, 6): {"near_cap_boundary"},
        (dev.device_id, 8): {"clock_unsynced"},
        (box.device_id, 3): {"evidence_broken"},
    }
    assert all(v.status == "open" and v.detail for v in views)
    expired = next(v for v in views if v.reason == "scale_verification_expired")
    assert "verified until 2026-03-01, weighed 2026-03-02" in expired.detail
    # Incremental: nothing new, nothing scanned; a new ticket is scanned alone.
    with sessions.begin() as session:
        assert holds.scan(session).scanned == 0
    ingest(sessions, [weigh(dev, "1.5", at=T0 + timedelta(days=22))])
    with sessions.begin() as session:
        again = holds.scan(session)
    assert (again.scanned, again.new_holds) == (1, 1)
    with sessions() as session:
        actions = session.scalars(select(AuditEntry.action)).all()
    assert actions.count("holds.scanned") == 2


def test_a_tampered_payload_is_held_as_evidence_broken(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "100"), weigh(dev, "200")])
    with sessions.begin() as session:
        # Someone edits the stored weight but not the signed payload.
        with bypassing_append_only(session):
            session.execute(text("UPDATE tickets SET net_g = net_g + 1 WHERE seq = 2"))
        holds.scan(session)
    with sessions() as session:
        (view,) = holds.list_holds(session)
    assert (view.seq, view.reason) == (2, "evidence_broken")
    assert "stored net_g differ from the signed payload" in view.detail


def test_resolution_releases_or_rejects_with_who_when_why(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    import_contracts(sessions, contract(cap_t="100"))
    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "1000"), weigh(dev, "0.3"), weigh(dev, "1.9")])
    with sessions.begin() as session:
        holds.scan(session)
    with sessions() as session:
        st = statement_for(session, BIN, "2026-03")
        open_holds = holds.list_holds(session, status="open")
    assert st is not None
    assert st.total_tonnes == 1
    assert [(h.seq, h.status) for h in st.held] == [(2, "open"), (3, "open")]
    assert st.held[0].reasons == (("implausible_weight", "open"),)
    first, second = open_holds
    with sessions.begin() as session:
        holds.resolve(session, first.hold_id, "reject", actor="ops.almaty",
                      reason="scale zero drift, not a delivery")  # fmt: skip
        holds.resolve_ticket(session, dev.device_id, 3, "release", actor="ops.almaty",
                             reason="small lamp box, weight checked on site")  # fmt: skip
    with sessions() as session:
        st = statement_for(session, BIN, "2026-03")
        views = {v.hold_id: v for v in holds.list_holds(session)}
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action.like("hold.%")).order_by(AuditEntry.seq)
        ).all()
    assert st is not None
    assert st.total_tonnes == Decimal("1.0019")
    assert [(h.seq, h.status) for h in st.held] == [(2, "rejected")]
    assert views[first.hold_id].status == "rejected"
    assert views[first.hold_id].decided_by == "ops.almaty"
    assert views[first.hold_id].decided_at is not None
    assert views[second.hold_id].decision_reason == "small lamp box, weight checked on site"
    assert [e.action for e in entries] == ["hold.rejected", "hold.released"]
    assert json.loads(entries[1].data)["ticket"] == f"{dev.device_id}:3"
    with sessions.begin() as session, pytest.raises(holds.HoldError, match="already released"):
        holds.resolve(session, second.hold_id, "reject", actor="B", reason="changed my mind")
    with sessions.begin() as session, pytest.raises(holds.HoldError, match="needs a reason"):
        holds.resolve(session, first.hold_id, "release", actor="B", reason=" ")


def _ledger(path: Path) -> sessionmaker[Session]:
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    return session_factory(engine)


def test_holds_do_not_depend_on_arrival_order(tmp_path: Path) -> None:
    dev: FakeDevice = fake_device(tmp_path, start=T0)
    records = [weigh(dev, "4950", at=T0 + timedelta(days=d)) for d in (0, 1, 2, 3)]
    records.append(weigh(dev, "700"))
    forged = forge(dev, weigh(dev, "710"), net_kg="999", gross_kg="999")
    records += [forged, weigh(dev, "720")]
    results = []
    for name, order in (("forward", records), ("reverse", list(reversed(records)))):
        sessions = _ledger(tmp_path / f"{name}.sqlite3")
        register(sessions, dev)
        import_contracts(sessions, contract(cap_t="100"))
        # One at a time, each followed by a scan: the worst case for order effects.
        for w in order:
            ingest(sessions, [w])
            with sessions.begin() as session:
                holds.scan(session)
        with sessions() as session:
            st = statement_for(session, BIN, "2026-03")
            results.append((reasons(session), st.canonical_text() if st else None))
    assert results[0] == results[1]
    assert results[0][0] == {
        (dev.device_id, 1): {"near_cap_boundary"},
        (dev.device_id, 2): {"near_cap_boundary"},
        (dev.device_id, 3): {"near_cap_boundary"},
        (dev.device_id, 4): {"near_cap_boundary"},
        (dev.device_id, 7): {"evidence_broken"},
    }


def test_a_badge_outside_its_contractors_regions_is_held_then_released(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    from server.money import badges
    from server.money.statements import compute_and_store
    from server.people.permissions import Permission
    from tests.support.accounts import operator
    from tests.support.tickets import OTHER_BIN

    import_contracts(
        sessions,
        contract(cap_t="100"),  # BIN: Almaty
        contract(contract_id="EPR-T02", lot="2", contractor_bin=OTHER_BIN,
                 contractor_name="Other LLP", regions="Astana", cap_t="100"),
    )  # fmt: skip
    with sessions.begin() as session:
        badges.store(
            session,
            badges.BadgeMap((badges.BadgeEntry("B-OTHER", OTHER_BIN),)),
            source="test",
            actor="ops",
        )
    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)  # an Almaty site
    ingest(sessions, [weigh(dev, "1000"), weigh(dev, "500", badge="B-OTHER")])
    computer = operator(sessions, "ops", Permission.COMPUTE)
    with sessions.begin() as session:
        result = compute_and_store(session, ["2026-03"], actor=computer)
    assert result.new_holds == 1
    by_bin = {d.contractor_bin: json.loads(d.body) for d in result.drafts}
    assert by_bin[BIN]["total_tonnes"] == "1"  # the badge says it is not Eco's tonne
    (held,) = by_bin[OTHER_BIN]["held"]
    assert held["reasons"] == [{"reason": "site_outside_region", "status": "open"}]
    with sessions() as session:
        (view,) = holds.list_holds(session)
    assert (view.seq, view.reason) == (2, "site_outside_region")
    with sessions.begin() as session:
        holds.resolve(session, view.hold_id, "release", actor="ops.almaty",
                      reason="delivered from a neighbouring region by agreement")  # fmt: skip
    with sessions.begin() as session:
        again = compute_and_store(session, ["2026-03"], actor=computer)
    totals = {d.contractor_bin: json.loads(d.body)["total_tonnes"] for d in again.drafts}
    assert totals == {OTHER_BIN: "0.5"}  # Eco's draft is unchanged, Other's now pays it
    with sessions() as session:
        assert holds.list_holds(session, status="released")[0].seq == 2
