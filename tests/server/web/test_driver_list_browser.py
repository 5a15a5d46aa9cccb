"""The driver's list in Chromium: on paper, one page per vehicle and no page chrome."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

from playwright.sync_api import Browser

from server.ledger.db import make_engine, migrate, session_factory
from server.logistics.route_plans import store_plan
from server.logistics.routes import Stop, Vehicle, nearest_neighbour_routes
from tests.server.web.test_browser import sign_in
from tests.support.accounts import operator
from tests.support.web import serve

STOPS = [Stop(f"krg-c{i}", 49.80 + i * 0.004, 73.08 + i * 0.003, kg=400) for i in range(1, 9)]
TRUCKS = [
    Vehicle(f"krg-truck-{k}", 49.82, 73.08, capacity_kg=1600, depot_id="karaganda-rp-01")
    for k in (1, 2)
]


def test_printed_driver_list_has_a_page_per_vehicle(browser: Browser, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    sessions = session_factory(engine)
    operator(sessions, "operator1")  # plans need no tickets: an empty ledger
    plan = nearest_neighbour_routes(STOPS, TRUCKS)
    assert len(plan.routes) == 2
    with sessions.begin() as session:
        plan_id = store_plan(
            session, plan, STOPS, TRUCKS, plan_date=date(2026, 11, 4), by="operator1",
            now=datetime.now(UTC),
        ).id  # fmt: skip
    context = browser.new_context(locale="en-US")
    try:
        page = context.new_page()
        with serve(engine, url) as base:
            sign_in(page, base, "operator1", f"/routes/{plan_id}")
            page.wait_for_url(re.compile(rf"/routes/{plan_id}$"))
            assert page.locator("section.driver-sheet").count() == 2
            assert page.locator("header.top").is_visible()
            page.emulate_media(media="print")
            assert not page.locator("header.top").is_visible()
            assert not page.locator("footer").is_visible()
            pdf = page.pdf(format="A4")
        assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) == 2
    finally:
        context.close()
        engine.dispose()
