"""Proof of pickup and the mass balance: a signed "emptied" reading linked to the
weighings that follow at the container's reception point, the month's estimate
against the weighed mass, and the surplus tickets held."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import Channel, FillEvent, encode, topic
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.messages import Inbound
from server.ledger.accounting import Hold
from server.ledger.places import Place
from server.logistics import densities
from server.logistics.mass_balance import balances, hold_surplus, pickups
from server.money.holds import list_holds
from tests.support.accounts import BIN_A
from tests.support.builders import fake_device, register
from tests.support.tickets import ingest, ticket_id, weigh

T0 = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
TABLE = densities.load()


def seed(sessions: sessionmaker[Session], tmp: Path) -> list[int]:
    scale = fake_device(tmp, "rp-almaty-01", start=T0 - timedelta(days=2))
    sensor = fake_device(tmp, "cs-almaty-01", start=T0 - timedelta(days=2))
    register(sessions, scale)
    register(sessions, sensor)
    with sessions.begin() as s:
        s.add(
            Place(
                place_id="almaty-c01",
                kind="container",
                name="Glass 1",
                region="Almaty",
                latitude=43.26,
                longitude=76.94,
                capacity_l=1100,
                category="packaging_glass",
                contractor_bin=BIN_A,
                site_id="almaty-rp-01",
                updated_at=T0,
                updated_by="t",
            )
        )
    readings = []
    for at, pct, event in (
        (T0, "88.0", None),
        (T0 + timedelta(hours=1, minutes=30), "90.0", FillEvent.FULL),
        (T0 + timedelta(hours=2), "2.0", FillEvent.EMPTIED),
    ):
        sensor.clock.current = at
        readings.append(sensor.fill(pct, container_id="almaty-c01", event=event))
    IngestHandler(sessions).handle_batch(
        [
            Inbound(topic(r.device_id, Channel.FILL), encode(r), T0 + timedelta(hours=3))
            for r in readings
        ]
    )
    pickup = T0 + timedelta(hours=2)
    weighings = [
        weigh(scale, "200", at=pickup + timedelta(hours=1), category="packaging_glass"),
        weigh(scale, "150", at=pickup + timedelta(hours=2), category="packaging_glass"),
        weigh(scale, "100", at=pickup + timedelta(hours=3), category="packaging_glass"),
        weigh(scale, "500", at=pickup + timedelta(hours=4), category="tyres"),  # another stream
        weigh(scale, "70", at=pickup + timedelta(hours=49), category="packaging_glass"),  # too late
        weigh(scale, "60", at=pickup - timedelta(hours=1), category="packaging_glass"),  # before
    ]
    ingest(sessions, weighings)
    with sessions() as s:
        return [ticket_id(s, w) for w in weighings]


def test_pickup_links_weighings_and_surplus_is_held(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    ids = seed(sessions, tmp_path)
    with sessions() as s:
        (p,) = pickups(s, "2026-03", TABLE)
        assert p.container_id == "almaty-c01"
        assert p.contractor_bin == BIN_A
        assert p.litres == Decimal("968.0")  # (90 - 2) % of 1,100 l
        assert p.estimate_g == 290_400  # x 0.300 kg/l
        assert p.tickets == tuple(ids[:3])
        (b,) = balances(s, "2026-03", TABLE)
        assert (b.pickups, b.estimate_g, b.weighed_g) == (1, 290_400, 450_000)
        assert b.ratio == Decimal("1.55")
        assert b.surplus_g(TABLE.tolerance_pct) == 450_000 - 363_000
        assert b.surplus_tickets(TABLE.tolerance_pct) == [ids[2]]
        assert b.surplus_tickets(Decimal(60)) == []  # within a looser tolerance
        assert balances(s, "2026-04", TABLE) == []
    with sessions.begin() as s:
        result = hold_surplus(s, "2026-03", TABLE, by="ops.anna")
        assert (result.balances, result.over, result.new_holds) == (1, 1, 1)
    with sessions.begin() as s:
        assert hold_surplus(s, "2026-03", TABLE, by="ops.anna").new_holds == 0  # once only
    with sessions() as s:
        (hold,) = s.scalars(select(Hold)).all()
        assert (hold.ticket_id, hold.reason) == (ids[2], "mass_balance")
        assert "weighed 450 kg against 290.4 kg" in hold.detail
        (view,) = list_holds(s, status="open")
        assert view.to_dict()["reason_text"].startswith("weighed more than")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[kg_per_litre]\nglass = 0.3\n", "t.toml: kg_per_litre.glass: write a decimal string"),
        ('[kg_per_litre]\nglass = "-1"\n', "must be a non-negative number"),
        ('[kg_per_litre]\nglass = "0"\n', "must be above zero"),
        ('[kg_per_litre]\n"Glass; DROP" = "1"\n', "not a category name"),
        ('colour = "red"\n[kg_per_litre]\nglass = "1"\n', "t.toml: colour: unknown key"),
        ("[kg_per_litre\n", "t.toml: not valid TOML"),
        ('pickup_window_h = 100000\n[kg_per_litre]\nglass = "1"\n', "pickup_window_h"),
    ],
)
def test_densities_file_is_checked(text: str, expected: str) -> None:
    with pytest.raises(densities.DensityError, match=expected.replace("(", r"\(")):
        densities.parse(text, "t.toml")
