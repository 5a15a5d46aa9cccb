"""A weighing's site and scale are its device's, as registered: a claim of another
site is held and never paid there, and a scale renamed on the device never skips the
verification hold."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from server.fleet.registry import (
    RegistryError,
    register_device,
    register_scale,
    set_device_status,
    upsert_site,
)
from server.money import holds
from server.money.statements import compute_and_store, statement_for
from server.people.permissions import Permission
from tests.support.accounts import operator
from tests.support.builders import fake_device, register
from tests.support.tickets import BIN, OTHER_BIN, contract, import_contracts, ingest, weigh

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)  # 09:00 in Almaty
SHYMKENT = "shymkent-rp-01"


def found(session: Session) -> dict[tuple[str, int], set[str]]:
    out: dict[tuple[str, int], set[str]] = {}
    for h in holds.list_holds(session):
        out.setdefault((h.device_id, h.seq), set()).add(h.reason)
    return out


def _two_regions(sessions: sessionmaker[Session]) -> None:
    """BIN collects in Almaty, OTHER_BIN in Shymkent, same category and rate."""
    import_contracts(
        sessions,
        contract(),
        contract(contract_id="EPR-S01", contractor_bin=OTHER_BIN, regions="Shymkent"),
    )
    with sessions.begin() as session:
        upsert_site(
            session, SHYMKENT, name="Shymkent RP 1", region="Shymkent", kind="reception_point"
        )


def test_an_almaty_device_claiming_a_shymkent_site_is_held_and_never_paid_there(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    _two_regions(sessions)
    almaty = fake_device(tmp_path, "rp-almaty-01", start=T0)
    register(sessions, almaty)  # at almaty-rp-01
    ingest(sessions, [weigh(almaty, "500", site_id=SHYMKENT), weigh(almaty, "100")])
    computer = operator(sessions, "ops", Permission.COMPUTE)
    with sessions.begin() as session:
        compute_and_store(session, ["2026-03"], actor=computer)
    with sessions() as session:
        assert found(session) == {(almaty.device_id, 1): {"site_not_registered"}}
        (hold,) = holds.list_holds(session)
        shymkent = statement_for(session, OTHER_BIN, "2026-03")
        own = statement_for(session, BIN, "2026-03")
    assert "rp-almaty-01 was registered at almaty-rp-01, not shymkent-rp-01" in hold.detail
    assert shymkent is not None
    assert own is not None
    assert shymkent.total_kzt == 0  # not a tenge under the Shymkent contract
    assert [(h.seq, h.reasons) for h in shymkent.held] == [(1, (("site_not_registered", "open"),))]
    assert own.total_tonnes == Decimal("0.1")  # the honest weighing is paid as before
    # Releasing would pay it under the claimed site's contracts: refused.
    with sessions.begin() as session, pytest.raises(holds.HoldError, match="never paid at"):
        holds.resolve(session, hold.hold_id, "release", actor="ops", reason="looks fine")
    with sessions.begin() as session:
        holds.resolve(session, hold.hold_id, "reject", actor="ops", reason="wrong site")
    with sessions() as session:
        after = statement_for(session, OTHER_BIN, "2026-03")
    assert after is not None
    assert after.total_kzt == 0
    assert [h.status for h in after.held] == ["rejected"]


def test_a_device_that_moved_is_paid_where_it_stood_when_it_weighed(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    from server.fleet.registry import move_device

    _two_regions(sessions)
    dev = fake_device(tmp_path, "rp-mobile-01", start=T0)
    with sessions.begin() as session:
        upsert_site(
            session, "almaty-rp-01", name="Almaty RP 1", region="Almaty", kind="reception_point"
        )
        key = dev.key.public_key_b64()
        register_device(session, dev.device_id, site_id="almaty-rp-01", public_key=key,
                        now=T0 - timedelta(days=30))  # fmt: skip
        set_device_status(session, dev.device_id, "approved")
    moved_at = T0 + timedelta(days=1)
    ingest(
        sessions,
        [
            weigh(dev, "100", at=T0),  # 1: Almaty, before the move: paid to BIN
            weigh(dev, "200", at=T0 + timedelta(days=2), site_id=SHYMKENT),  # 2: held for now
        ],
    )
    with sessions.begin() as session:
        holds.scan(session)
    with sessions() as session:
        (hold,) = holds.list_holds(session)
    assert (hold.seq, hold.reason) == (2, "site_not_registered")
    # The registry was late: the move is recorded with the day it happened, and only
    # then does the weighing at the new site become payable there.
    with sessions.begin() as session, pytest.raises(RegistryError, match="before the device's"):
        move_device(session, dev.device_id, SHYMKENT, effective_at=T0 - timedelta(days=31))
    with sessions.begin() as session:
        move_device(session, dev.device_id, SHYMKENT, effective_at=moved_at, by="ops")
    ingest(
        sessions,
        [
            weigh(dev, "300", at=T0 + timedelta(days=3), site_id=SHYMKENT),  # 3: fine
            weigh(dev, "50", at=T0 + timedelta(days=4)),  # 4: claims Almaty after the move
        ],
    )
    with sessions.begin() as session:
        holds.scan(session)
        holds.resolve(session, hold.hold_id, "release", actor="ops", reason="moved on the 3rd")
    with sessions() as session:
        assert found(session) == {
            (dev.device_id, 2): {"site_not_registered"},
            (dev.device_id, 4): {"site_not_registered"},
        }
        shymkent = statement_for(session, OTHER_BIN, "2026-03")
        almaty = statement_for(session, BIN, "2026-03")
    assert shymkent is not None
    assert almaty is not None
    assert shymkent.total_tonnes == Decimal("0.5")  # tickets 2 (released) and 3
    assert almaty.total_tonnes == Decimal("0.1")  # ticket 1 only


def test_a_renamed_or_borrowed_scale_is_held_and_keeps_the_verification_hold(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    import_contracts(sessions, contract())
    lapsed = fake_device(tmp_path, "rp-lapsed-01", start=T0)
    other = fake_device(tmp_path, "rp-other-01", start=T0)
    bare = fake_device(tmp_path, "rp-bare-01", start=T0)
    for d in (lapsed, other, bare):
        register(sessions, d)
    with sessions.begin() as session:
        register_scale(session, "s-lapsed", device_id=lapsed.device_id, certificate_no="KZ-1",
                       verified_until=date(2026, 3, 1))  # fmt: skip
        register_scale(session, "s-other", device_id=other.device_id, certificate_no="KZ-2",
                       verified_until=date(2027, 3, 1))  # fmt: skip
    ingest(
        sessions,
        [
            weigh(lapsed, "100", scale_id="s-lapsed"),  # 1: expired the day before
            weigh(lapsed, "100", scale_id="s-lapsed-2"),  # 2: the same scale, renamed
            weigh(lapsed, "100", scale_id="s-other"),  # 3: another device's valid scale
            weigh(other, "100", scale_id="s-other"),  # 1: its own valid scale: fine
            weigh(bare, "100", scale_id="anything"),  # 1: no scale on file: as before
        ],
    )
    with sessions.begin() as session:
        holds.scan(session)
    with sessions() as session:
        assert found(session) == {
            (lapsed.device_id, 1): {"scale_verification_expired"},
            (lapsed.device_id, 2): {"scale_not_registered", "scale_verification_expired"},
            (lapsed.device_id, 3): {"scale_not_registered", "scale_verification_expired"},
        }
        details = {(h.seq, h.reason): h.detail for h in holds.list_holds(session)}
        st = statement_for(session, BIN, "2026-03")
    assert details[(2, "scale_not_registered")] == (
        "scale s-lapsed-2 is not on file (scales of rp-lapsed-01: s-lapsed)"
    )
    assert details[(2, "scale_verification_expired")] == (
        "s-lapsed-2 is not rp-lapsed-01's; scale s-lapsed verified until 2026-03-01,"
        " weighed 2026-03-02"
    )
    assert details[(3, "scale_not_registered")] == "scale s-other is registered to rp-other-01"
    assert st is not None
    assert st.total_tonnes == Decimal("0.2")  # other's and bare's weighings only
    # Releasing the registration hold alone pays nothing: the verification hold stays.
    with sessions() as session:
        renamed = next(
            h for h in holds.list_holds(session) if (h.seq, h.reason) == (2, "scale_not_registered")
        )
    with sessions.begin() as session:
        holds.resolve(session, renamed.hold_id, "release", actor="ops", reason="same scale")
    with sessions() as session:
        again = statement_for(session, BIN, "2026-03")
    assert again is not None
    assert again.total_tonnes == Decimal("0.2")


def test_devices_without_scales_on_file_are_bound_when_the_rules_ask(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    from server.money.hold_rules import HoldRules, ScaleRule, store_rules

    bare = fake_device(tmp_path, "rp-bare-01", start=T0)
    register(sessions, bare)
    ingest(sessions, [weigh(bare, "100", scale_id="anything")])
    with sessions.begin() as session:
        rules = HoldRules(scale=ScaleRule(hold_without_certificate=True))
        store_rules(session, rules, source="test", actor="ops")
        holds.scan(session)
    with sessions() as session:
        assert found(session) == {
            (bare.device_id, 1): {"scale_not_registered", "scale_not_verified"}
        }
