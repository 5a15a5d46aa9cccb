"""Route plans and notification subscriptions on the pages and the API: the driver's
list and GeoJSON within the contractor scope, one's own subscriptions with CSRF."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.ledger.notifications import NotificationSubscription
from server.ledger.route_plans import RoutePlan
from server.logistics.route_plans import store_plan
from server.logistics.routes import Stop, Vehicle, nearest_neighbour_routes
from server.notifications.subscriptions import record_address
from server.people.accounts import Account, Role, find_user
from tests.server.web.test_operations_pages import EN, flash, post
from tests.support.accounts import BIN_A, BIN_B, add_user, operator
from tests.support.due import REGION, due_region
from tests.support.web import Seeded, Web, form_csrf, serve

STOPS = [
    Stop("krg-c1", 49.8061, 73.0852, kg=60, litres=1000),
    Stop("krg-c2", 49.8123, 73.1010, kg=50, litres=900),
    Stop("krg-c3", 49.7988, 73.1203, kg=70, litres=1100),
    Stop("too-heavy", 49.80, 73.10, kg=9000),
]
TRUCK = Vehicle("krg-truck-1", 49.82, 73.08, capacity_kg=8000, depot_id="karaganda-rp-01")


@pytest.fixture
def web(sessions: sessionmaker[Session], ledger_url: str) -> Iterator[Web]:
    """The app with the accounts these pages need, on an otherwise empty ledger (plans
    and subscriptions need no tickets)."""
    operator(sessions, "operator1")
    add_user(sessions, "eco", Role.CONTRACTOR, BIN_A)
    add_user(sessions, "steppe", Role.CONTRACTOR, BIN_B)
    with serve(sessions.kw["bind"], ledger_url) as url:
        yield Web(url, sessions, Seeded())


def _plan(web: Web, contractor_bin: str | None) -> int:
    plan = nearest_neighbour_routes(STOPS, [TRUCK])
    with web.sessions.begin() as session:
        return store_plan(
            session,
            plan,
            STOPS,
            [TRUCK],
            plan_date=date(2026, 11, 4),
            by="operator1",
            now=datetime.now(UTC),
            name="Karaganda east",
            contractor_bin=contractor_bin,
        ).id


def test_driver_list_and_geojson_in_the_contractor_scope(web: Web) -> None:
    own = _plan(web, BIN_A)
    operators_only = _plan(web, None)
    with web.login("operator1") as c:
        listing = c.get("/routes", headers=EN).text
        assert f'id="plan-{own}"' in listing
        assert f'id="plan-{operators_only}"' in listing
        sheet = c.get(f"/routes/{own}", headers=EN).text
        assert "Driver&#39;s list — krg-truck-1" in sheet or "Driver's list — krg-truck-1" in sheet
        assert sheet.index("krg-c1") < sheet.index("krg-c2") < sheet.index("krg-c3")
        assert "/static/routes.css" in sheet
        assert "too-heavy" in sheet  # unserved, with its reason
        assert c.get("/static/routes.css").status_code == 200
    with web.login("eco") as c:  # contractor A: its own plan only
        listing = c.get("/routes", headers=EN).text
        assert f'id="plan-{own}"' in listing
        assert f'id="plan-{operators_only}"' not in listing
        assert c.get(f"/routes/{own}").status_code == 200
        assert c.get(f"/routes/{operators_only}").status_code == 404
        assert c.get(f"/routes/{own}?vehicle=nope").status_code == 404
    with web.client() as c:
        headers = web.token("steppe")  # contractor B: neither
        assert c.get(f"/api/v1/routes/{own}", headers=headers).status_code == 404
        assert c.get(f"/api/v1/routes/{own}/geojson", headers=headers).status_code == 404
        assert c.get("/api/v1/routes", headers=headers).json() == []
        assert c.get("/api/v1/routes/0", headers=headers).status_code == 422
        headers = web.token("eco")
        answer = c.get(f"/api/v1/routes/{own}/geojson", headers=headers)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/geo+json"
        features = answer.json()["features"]
        line = features[0]
        assert line["geometry"]["type"] == "LineString"
        # Depot, three stops, depot; longitude first.
        assert line["geometry"]["coordinates"][0] == [73.08, 49.82]
        assert len(line["geometry"]["coordinates"]) == 5
        assert [f["properties"]["order"] for f in features[1:]] == [1, 2, 3]
        full = c.get(f"/api/v1/routes/{own}", headers=headers).json()
        assert full["unserved"] == [
            {"id": "too-heavy", "reason": "heavier or larger than any vehicle's capacity"}
        ]


def test_own_subscriptions_on_the_account_page(web: Web) -> None:
    with web.login("operator1") as c:
        page = c.get("/account/notifications", headers=EN).text
        assert 'name="url"' in page
        hook = "json://hookuser:hook-secret@10.1.2.3:8080/t0ken-123456"
        message, page = flash(
            c,
            post(
                c, "/account/notifications", "/account/notifications", event="hold_opened", url=hook
            ),
        )
        assert message == "ok: Subscribed to: Hold opened."
        assert "json://10.1.2.3/…" in page
        assert "hook-secret" not in page
        assert "t0ken-123456" not in page
        # Without the CSRF token: refused, nothing stored.
        no_token = c.post("/account/notifications", data={"event": "hold_opened", "url": hook})
        assert no_token.status_code == 403
    with web.sessions() as session:
        (sub_id,) = session.scalars(select(NotificationSubscription.id))
    with web.login("eco") as c:
        page = c.get("/account/notifications", headers=EN).text
        assert 'name="url"' not in page
        assert 'value="hold_opened"' not in page
        assert "No e-mail address is recorded" in page
        refused, _ = flash(
            c,
            post(
                c,
                "/account/notifications",
                "/account/notifications",
                event="container_due",
                url="json://169.254.169.254/latest",
            ),
        )
        assert "only operators give a URL" in refused
        # Another account's subscription cannot be cancelled (nor told apart from none).
        refused, _ = flash(
            c,
            post(c, f"/account/notifications/{sub_id}/cancel", "/account/notifications"),
        )
        assert refused == f"error: Refused: subscription {sub_id} not found"
    with web.sessions.begin() as session:
        ops = find_user(session, "operator1")
        assert ops is not None
        record_address(session, "eco", "dispatch@eco.kz", by=Account.of(ops), now=datetime.now(UTC))
    with web.login("eco") as c:
        page = c.get("/account/notifications", headers=EN).text
        assert "d…@eco.kz" in page
        refused, _ = flash(
            c, post(c, "/account/notifications", "/account/notifications", event="container_due")
        )
        assert "no mail server configured" in refused
    with web.login("operator1") as c:
        message, page = flash(
            c, post(c, f"/account/notifications/{sub_id}/cancel", "/account/notifications")
        )
        assert message == f"ok: Subscription {sub_id} cancelled."
        assert "json://10.1.2.3" not in page


def test_operator_plans_routes_from_the_due_list(web: Web, tmp_path: Path) -> None:
    due_region(web.sessions, tmp_path)
    due_page = f"/due?region={REGION}&contractor={BIN_A}"
    form = {
        "region": REGION,
        "contractor": BIN_A,
        "depot": "krg-rp-02",
        "plan_date": "2026-11-04",
        "vehicles": "2",
        "capacity_kg": "3000",
        "capacity_litres": "20000",
        "shift_min": "480",
    }
    with web.login("operator1") as c:
        page = c.get(due_page, headers=EN).text
        assert 'id="plan-routes"' in page
        assert '<option value="krg-rp-01">' in page
        message, sheet = flash(c, post(c, "/due/routes", due_page, **form))
        assert message == "ok: Route plan 1: 3 stops, 0 unserved, 0 left out."
        assert "krg-glass" in sheet
        assert "krg-other" not in sheet  # another contractor's container
        assert 'href="/map?plan=1"' in sheet
        shown = c.get("/map?plan=1", headers=EN).text
        assert 'data-route="/api/v1/routes/1/geojson"' in shown
        # Hostile: no CSRF token, a depot elsewhere, a bad date, a made-up region, too many.
        assert c.post("/due/routes", data=form).status_code == 403
        refused, _ = flash(c, post(c, "/due/routes", due_page, **{**form, "depot": "x'--"}))
        assert refused.startswith("error: ")
        assert "is not a reception point of Karaganda" in refused
        refused, _ = flash(c, post(c, "/due/routes", due_page, **{**form, "plan_date": "04.11"}))
        assert "expected YYYY-MM-DD" in refused
        refused, _ = flash(c, post(c, "/due/routes", due_page, **{**form, "region": "<b>x"}))
        assert refused == "error: Refused: region '<b>x' is not a region"
        bad = post(c, "/due/routes", due_page, **{**form, "vehicles": "5000"})
        assert bad.status_code == 400
    with web.sessions() as session:
        assert len(session.scalars(select(RoutePlan)).all()) == 1
    with web.login("eco") as c:  # contractors see the plan of their trucks, plan nothing
        assert 'id="plan-routes"' not in c.get(due_page, headers=EN).text
        assert c.get("/map?plan=1").status_code == 200
        token = form_csrf(c.get("/due").text)
        assert c.post("/due/routes", data={"csrf_token": token, **form}).status_code == 403
    with web.login("steppe") as c:
        assert c.get("/map?plan=1").status_code == 404
