"""The logistics pages in real Chromium: the map works offline (no request leaves the
host), a container's history, the due list and its download, editing a place; and a
contractor sees only its own containers — another's is "not found"."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect
from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import Channel, FillEvent, encode, topic
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.messages import Inbound
from server.ledger.db import make_engine, migrate, session_factory
from server.logistics.places import PlaceRow, store
from server.logistics.route_plans import store_plan
from server.logistics.routes import Stop, Vehicle, nearest_neighbour_routes
from server.money.amounts import LOCAL_TZ
from tests.support.accounts import BIN_A, BIN_B, PASSWORD, operator
from tests.support.builders import fake_device, register
from tests.support.web import form_csrf, seed, serve

PLACES = [
    PlaceRow(
        "almaty-rp-01",
        "reception_point",
        "Almaty RP 1",
        "Almaty",
        43.2567,
        76.9286,
        None,
        None,
        None,
        None,
    ),
    PlaceRow(
        "aktobe-rp-01",
        "reception_point",
        "Aktobe RP 1",
        "Aktobe",
        50.2839,
        57.1670,
        None,
        None,
        None,
        None,
    ),
    PlaceRow(
        "almaty-c1",
        "container",
        "<b>Glass</b> 1",
        "Almaty",
        43.2601,
        76.9402,
        1100,
        "packaging_glass",
        BIN_A,
        "almaty-rp-01",
    ),
    PlaceRow(
        "almaty-c2",
        "container",
        "Polymer 2",
        "Almaty",
        43.2405,
        76.9011,
        1100,
        "packaging_polymer",
        BIN_A,
        "almaty-rp-01",
    ),
    PlaceRow(
        "aktobe-c1",
        "container",
        "Steppe box",
        "Aktobe",
        50.2901,
        57.1802,
        1100,
        "packaging_glass",
        BIN_B,
        "aktobe-rp-01",
    ),
]


def fill_history(sessions: sessionmaker[Session], tmp: Path) -> None:
    """Three days of hourly readings of almaty-c2 (filling 1 % an hour after an
    emptying two days ago) and of aktobe-c1, through the real ingest."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    sensor = fake_device(tmp, "cs-almaty-01", start=now - timedelta(days=4))
    other = fake_device(tmp, "cs-aktobe-01", start=now - timedelta(days=4))
    register(sessions, sensor)
    register(sessions, other, site_id="aktobe-rp-01", region="Aktobe")
    readings = []
    for h in range(72, 0, -1):
        at = now - timedelta(hours=h) + timedelta(minutes=30)
        level = 60 + (72 - h) * 0.5 if h > 48 else (48 - h) * 1.0
        event = FillEvent.EMPTIED if h == 48 else None
        sensor.clock.current = at
        readings.append(sensor.fill(f"{level:.1f}", container_id="almaty-c2", event=event))
        other.clock.current = at
        readings.append(other.fill("95.0" if h == 1 else "50.0", container_id="aktobe-c1"))
    IngestHandler(sessions).handle_batch(
        [Inbound(topic(r.device_id, Channel.FILL), encode(r), now) for r in readings]
    )
    with sessions.begin() as session:
        store(session, PLACES, by="test", source="test")


def route_plan(sessions: sessionmaker[Session]) -> None:
    """Route plan 1: one truck from almaty-rp-01 to Almaty's two containers."""
    by_id = {p.place_id: p for p in PLACES}
    stops = [
        Stop(pid, by_id[pid].latitude, by_id[pid].longitude, kg=100, litres=900)
        for pid in ("almaty-c2", "almaty-c1")
    ]
    rp = by_id["almaty-rp-01"]
    truck = Vehicle("almaty-truck-1", rp.latitude, rp.longitude, depot_id=rp.place_id)
    with sessions.begin() as session:
        store_plan(
            session,
            nearest_neighbour_routes(stops, [truck]),
            stops,
            [truck],
            plan_date=datetime.now(UTC).date(),
            by="operator1",
            now=datetime.now(UTC),
            contractor_bin=BIN_A,
        )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("logistics")
    url = f"sqlite:///{tmp / 'ledger.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    sessions = session_factory(engine)
    seed(sessions, tmp)  # contracts, users; almaty-c1 reads 87.5 % "full" now
    fill_history(sessions, tmp)
    route_plan(sessions)
    with serve(engine, url) as base:
        yield base
    engine.dispose()


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A page whose every request is routed: local ones go on, any other is refused
    and remembered."""
    context = browser.new_context(locale="en-US")
    context.set_default_timeout(10_000)
    requested: list[str] = []

    def guard(route: Route) -> None:
        requested.append(route.request.url)
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            route.abort()

    context.route("**/*", guard)
    yield context.new_page(), requested
    context.close()


def sign_in(page: Page, base: str, username: str, path: str) -> None:
    page.goto(base + path)
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_map_works_offline(page: tuple[Page, list[str]], site: str) -> None:
    p, requested = page
    sign_in(p, site, "operator1", "/map")
    expect(p.locator("#map")).to_have_attribute("data-loaded", "5")
    expect(p.locator("path.place")).to_have_count(5)
    expect(p.locator("path.place-reception_point")).to_have_count(2)
    expect(p.locator("path.state-full")).to_have_count(1)  # aktobe-c1 at 95 %
    expect(p.locator("path.state-alarm")).to_have_count(1)  # almaty-c1: container_full
    expect(p.locator("#map-count")).to_have_text("5 places shown")
    outline = ".leaflet-overlay-pane path:not(.place):not(.region-outline)"
    expect(p.locator(outline)).to_have_count(1)  # the country
    expect(p.locator("#map")).to_have_attribute("data-regions-loaded", "16")
    expect(p.locator("path.region-outline")).to_have_count(16)
    p.locator("path.region-outline").first.hover()
    expect(p.locator(".region-name:visible").last).not_to_be_empty()  # the name, as a tooltip
    p.locator("path.state-alarm").dispatch_event("click")
    popup = p.locator(".leaflet-popup-content")
    expect(popup).to_contain_text("<b>Glass</b> 1")  # names are text, never markup
    expect(popup.locator("b")).to_have_count(0)
    p.select_option("select[name=region]", "Aktobe")
    p.get_by_role("button", name="Show").click()
    expect(p.locator("#map")).to_have_attribute("data-loaded", "2")
    expect(p.locator("path.region-outline[stroke-width='2.5']")).to_have_count(1)  # Aqtöbe
    assert requested, "the guard saw no request"
    assert {urlsplit(u).hostname for u in requested} == {"127.0.0.1"}, requested
    assert any("/static/vendor/leaflet/leaflet.js" in u for u in requested)


def test_a_route_plan_on_the_map_in_stop_order(page: tuple[Page, list[str]], site: str) -> None:
    p, requested = page
    sign_in(p, site, "eco", "/routes/1")
    p.locator("#plan-on-map").click()
    expect(p.locator("#map-plan")).to_contain_text("Route plan 1 on the map")
    # Nearest first from almaty-rp-01: almaty-c1 (1 km), then almaty-c2.
    expect(p.locator("#map")).to_have_attribute(
        "data-route-stops", "almaty-truck-1:1:almaty-c1 almaty-truck-1:2:almaty-c2"
    )
    expect(p.locator("path.route-stop")).to_have_count(2)
    expect(p.locator(".route-order")).to_have_text(["1", "2"])
    expect(p.locator("#map")).to_have_attribute("data-loaded", "3")  # eco's places beneath
    assert {urlsplit(u).hostname for u in requested} == {"127.0.0.1"}, requested


def test_contractor_sees_only_its_own(page: tuple[Page, list[str]], site: str) -> None:
    p, requested = page
    sign_in(p, site, "eco", "/map")
    expect(p.locator("#map")).to_have_attribute("data-loaded", "3")  # two boxes and their RP
    expect(p.locator("select[name=contractor]")).to_have_count(0)
    for path in (
        "/containers/aktobe-c1",
        "/api/v1/places/aktobe-c1",
        "/api/v1/containers/aktobe-c1",
        f"/api/v1/places?contractor={BIN_B}",
        f"/map?contractor={BIN_B}",
        "/containers/no-such-box",
    ):
        response = p.goto(site + path)
        assert response is not None
        assert response.status == 404, path
        expect(p.locator("body")).not_to_contain_text("Steppe box")
    p.goto(site + "/due")
    expect(p.locator("table.due tbody tr")).to_have_count(2)  # its own two, not aktobe-c1
    expect(p.locator("#due-almaty-c1")).to_contain_text("due")
    expect(p.locator("#due-aktobe-c1")).to_have_count(0)
    response = p.goto(site + "/mass-balance")
    assert response is not None
    assert response.status == 403
    assert {urlsplit(u).hostname for u in requested} == {"127.0.0.1"}


def test_container_page_history_and_forecast(page: tuple[Page, list[str]], site: str) -> None:
    p, requested = page
    sign_in(p, site, "operator1", "/containers/almaty-c2")
    expect(p.locator("h1")).to_contain_text("Polymer 2")
    chart = p.locator("svg.fill-chart")
    expect(chart.locator("polyline.level")).to_have_count(1)
    expect(chart.locator("line.emptied")).to_have_count(1)
    expect(chart.locator("polyline.forecast")).to_have_count(1)
    expect(chart.locator("circle.predicted")).to_have_count(1)
    expect(p.locator("#fill")).to_contain_text("47.0%")
    # 1 % an hour since the emptying: 80 % in about 33 hours.
    predicted = p.locator("#predicted").inner_text()
    at = datetime.strptime(predicted[:16], "%Y-%m-%d %H:%M").replace(tzinfo=LOCAL_TZ)
    assert timedelta(hours=25) < at - datetime.now(UTC) < timedelta(hours=40), predicted
    expect(p.locator("table.events")).to_contain_text("emptied")
    expect(p.locator("#device")).to_contain_text("cs-almaty-01")
    expect(p.locator("table.pickups tbody tr")).to_have_count(1)
    expect(p.locator("table.pickups")).to_contain_text("786.5")  # 71.5 % of 1,100 l emptied
    assert {urlsplit(u).hostname for u in requested} == {"127.0.0.1"}


def test_due_list_and_download(page: tuple[Page, list[str]], site: str) -> None:
    p, requested = page
    sign_in(p, site, "operator1", "/due")
    expect(p.locator("#due-almaty-c1")).to_contain_text("due")
    expect(p.locator("#due-almaty-c2")).to_contain_text("due")  # predicted within 48 h
    expect(p.locator("#due-aktobe-c1")).to_contain_text("due")  # 95 % now
    with p.expect_download() as caught:
        p.get_by_role("link", name="CSV").click()
    text = Path(caught.value.path()).read_text(encoding="utf-8-sig")
    assert text.splitlines()[0].startswith("region,contractor_bin,container_id")
    assert "almaty-c2" in text
    assert "aktobe-c1" in text
    p.goto(site + "/due?region=Aktobe")
    expect(p.locator("table.due tbody tr")).to_have_count(1)
    response = p.goto(site + "/due?region=Atlantis")
    assert response is not None
    assert response.status == 422
    assert {urlsplit(u).hostname for u in requested} == {"127.0.0.1"}


def test_operator_edits_a_place(page: tuple[Page, list[str]], site: str) -> None:
    p, _ = page
    sign_in(p, site, "operator1", "/places/almaty-c1/edit")
    p.get_by_label("Latitude").fill("55.75")
    p.get_by_label("Longitude").fill("37.62")
    p.get_by_role("button", name="Save").click()
    expect(p.locator("#flash")).to_contain_text("outside Kazakhstan")
    p.goto(site + "/places/almaty-c1/edit")
    p.get_by_label("Capacity, litres").fill("770")
    p.get_by_role("button", name="Save").click()
    expect(p.locator("#flash")).to_contain_text("Place almaty-c1 saved by operator1")
    expect(p).to_have_url(re.compile(r"/containers/almaty-c1$"))


def test_forms_and_api_refuse_the_wrong_caller(site: str) -> None:
    with httpx.Client(base_url=site, follow_redirects=False) as client:
        assert client.get("/api/v1/places").status_code == 401
        client.post(
            "/login",
            data={
                "username": "eco",
                "password": PASSWORD,
                "csrf_token": form_csrf(client.get("/login").text),
                "next": "/",
            },
        )
        # A contractor may not edit, with or without a token; nobody without CSRF.
        edit = client.get("/places/almaty-c1/edit")
        assert edit.status_code == 403
        assert client.post("/places/almaty-c1/edit", data={"latitude": "1"}).status_code == 403
        # The API's edit: a contractor is refused even with a valid CSRF token of its own.
        csrf = {"X-CSRF-Token": form_csrf(client.get("/account").text)}
        moved = client.patch("/api/v1/places/almaty-c1", json={"latitude": "1"}, headers=csrf)
        assert moved.status_code == 403, moved.text
        assert client.get("/api/v1/places?region=<script>").status_code == 422
        assert client.get("/api/v1/due?horizon_h=-1").status_code == 422
        assert client.get("/api/v1/places/outline").json()["properties"]["name"] == "Kazakhstan"
        regions = client.get("/api/v1/places/regions")
        assert regions.headers["content-type"] == "application/geo+json"
        assert len(regions.json()["features"]) == 16
    with httpx.Client(base_url=site, follow_redirects=False) as client:
        client.post(
            "/login",
            data={
                "username": "operator1",
                "password": PASSWORD,
                "csrf_token": form_csrf(client.get("/login").text),
                "next": "/",
            },
        )
        no_csrf = client.post("/places/almaty-c1/edit", data={"name": "x", "latitude": "43.2"})
        assert no_csrf.status_code == 403
        assert client.patch("/api/v1/places/almaty-c1", json={"name": "x"}).status_code == 403
        csrf = {"X-CSRF-Token": form_csrf(client.get("/places/almaty-c1/edit").text)}
        outside = client.patch("/api/v1/places/almaty-c1", json={"latitude": "1"}, headers=csrf)
        assert outside.status_code == 422, outside.text  # not in Kazakhstan
        assert (
            client.patch("/api/v1/places/nowhere", json={"name": "x"}, headers=csrf).status_code
            == 404
        )
        kept = client.patch("/api/v1/places/almaty-c1", json={"name": "Almaty C1"}, headers=csrf)
        assert kept.status_code == 200, kept.text
        assert kept.json()["place_id"] == "almaty-c1"
        assert client.get("/api/v1/mass-balance/2026-13").status_code == 422
        assert client.get("/api/v1/mass-balance/2026-03").json() == []
        due = client.get("/api/v1/due", params={"format": "xlsx"})
        assert due.headers["content-type"].startswith("application/vnd.openxmlformats")


def test_a_tile_server_is_admitted_only_when_configured(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    operator(session_factory(engine), "ops")
    tiles = "https://tiles.example.kz/{z}/{x}/{y}.png"
    with serve(engine, url, map_tiles_url=tiles) as base, httpx.Client(base_url=base) as client:
        client.post(
            "/login",
            data={
                "username": "ops",
                "password": PASSWORD,
                "csrf_token": form_csrf(client.get("/login").text),
                "next": "/",
            },
        )
        page = client.get("/map")
        assert page.status_code == 200
        assert f'data-tiles="{tiles}"' in page.text
        csp = page.headers["content-security-policy"]
        assert "img-src 'self' data: https://tiles.example.kz;" in csp
        assert "script-src" not in csp  # scripts stay 'self' only (default-src)
        other = client.get("/due")
        assert "tiles.example.kz" not in other.headers["content-security-policy"]
    engine.dispose()
