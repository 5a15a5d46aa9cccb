"""Routes from the due list: containers' expected loads from fill and densities, depots
at reception points, the plan stored like one from files."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from server.ledger.route_plans import RoutePlan
from server.logistics.densities import load as load_densities
from server.logistics.due_routes import (
    SKIP_NO_CAPACITY,
    SKIP_SILENT,
    due_stops,
    plan_due,
)
from server.logistics.route_plans import PlanFileError
from server.logistics.routes import Vehicle
from tests.server.logistics.test_due import view
from tests.support.accounts import BIN_A
from tests.support.due import REGION, due_region

TRUCKS = [
    Vehicle("truck-1", 0.0, 0.0, capacity_kg=2000, capacity_litres=20_000, depot_id="krg-rp-01"),
    Vehicle("truck-2", 0.0, 0.0, capacity_kg=2000, capacity_litres=20_000, depot_id="krg-rp-02"),
]


def test_expected_load_is_fill_times_capacity_and_density() -> None:
    from server.logistics.due import classify

    nocap = view("nocap", "90")
    nocap.place.capacity_l = None
    views = [view("half", "85"), view("over", "130"), view("quiet", None), nocap]
    items = classify(views, {}, now=datetime(2026, 10, 14, 12, tzinfo=UTC))
    stops, skipped = due_stops(items, {"packaging_glass": Decimal("0.300")})
    by_id = {s.id: s for s in stops}
    # 85 % of 1,100 l = 935 l; x 0.3 kg/l = 280.5 kg. Overflowing counts as full.
    assert (by_id["half"].litres, by_id["half"].kg) == (935.0, 280.5)
    assert (by_id["over"].litres, by_id["over"].kg) == (1100.0, 330.0)
    assert (by_id["half"].lat, by_id["half"].lon) == (43.25, 76.93)
    assert {(k.container_id, k.reason) for k in skipped} == {
        ("quiet", SKIP_SILENT),
        ("nocap", SKIP_NO_CAPACITY),
    }


def test_plan_from_the_due_list_is_stored_with_depots_at_reception_points(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    due_region(sessions, tmp_path)
    now = datetime.now(UTC)
    with sessions.begin() as session:
        done = plan_due(
            session,
            TRUCKS,
            load_densities(),
            region=REGION,
            contractor=BIN_A,
            plan_date=date(2026, 11, 4),
            now=now,
            by="ops",
            time_limit_s=1,
        )
        plan_id = done.row.id
    # BIN_A's due and overflowing containers; not the low one, not BIN_B's.
    assert {s.id for s in done.stops} == {"krg-glass", "krg-paper", "krg-over"}
    assert done.plan.served == 3
    loads = {s.id: (s.litres, s.kg) for s in done.stops}
    assert loads["krg-paper"] == pytest.approx((1710.0, 102.6))  # 85.5 % of 2,000 l x 0.06
    with sessions() as session:
        row = session.get(RoutePlan, plan_id)
        assert row is not None
        assert (row.contractor_bin, row.stops, row.plan_date) == (BIN_A, 3, date(2026, 11, 4))
        body = json.loads(row.body)
    depots = {r["depot"]["id"]: (r["depot"]["lat"], r["depot"]["lon"]) for r in body["routes"]}
    assert (
        depots.items()
        <= {
            "krg-rp-01": (49.806, 73.085),
            "krg-rp-02": (49.84, 73.14),
        }.items()
    )


def test_hostile_input_is_refused_and_nothing_stored(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    due_region(sessions, tmp_path)
    now = datetime.now(UTC)
    cases: list[tuple[dict[str, object], str]] = [
        (
            {"vehicles": [replace(TRUCKS[0], depot_id="almaty-rp-01")]},
            "vehicle truck-1: depot_id 'almaty-rp-01' is not a reception point of Karaganda",
        ),
        ({"region": "Aktobe"}, "region Aktobe: no reception point"),
        ({"contractor": "123456789012"}, "contractor: "),
        ({"contractor": "' OR 1=1 --"}, "contractor: "),
    ]
    for change, message in cases:
        args: dict[str, object] = {"vehicles": TRUCKS, "region": REGION, "contractor": BIN_A}
        args.update(change)
        with pytest.raises(PlanFileError, match=message), sessions.begin() as session:
            plan_due(
                session,
                args["vehicles"],  # type: ignore[arg-type]
                load_densities(),
                region=str(args["region"]),
                contractor=args["contractor"],  # type: ignore[arg-type]
                plan_date=date(2026, 11, 4),
                now=now,
                by="ops",
                time_limit_s=1,
            )
    with sessions() as session:
        assert session.query(RoutePlan).count() == 0
