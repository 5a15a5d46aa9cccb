"""Every main page on a phone (390 px) and a laptop (1366 px) in real Chromium: nothing
pushes the page sideways (wide tables scroll inside their own box), a skip link is the
first thing the keyboard reaches, every data table has a caption, and form fields'
borders stand out from the page at 3:1 or more, computed from the styles the browser
applied. Each page is saved as a screenshot under ``test-artifacts/layout/`` at the
repository root (git-ignored), for a person to look at."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from server.ledger.db import make_engine, migrate, session_factory
from server.logistics.places import store
from server.money.holds import Finding, record
from server.money.statements import compute_and_store, list_statements
from server.people.permissions import Permission
from tests.server.web.test_logistics_pages import PLACES, route_plan
from tests.support.accounts import BIN_A, PASSWORD, operator
from tests.support.web import PERIOD, Seeded, seed, serve

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "layout"
WIDTHS = (390, 1366)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Seeded, int]]:
    """The seeded app with a recorded statement, an open hold, the logistics pages'
    places and route plan 1."""
    tmp = tmp_path_factory.mktemp("layout")
    url = f"sqlite:///{tmp / 'ledger.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    sessions = session_factory(engine)
    seeded = seed(sessions, tmp)
    computer = operator(sessions, "operator1", Permission.COMPUTE)
    with sessions.begin() as session:
        record(
            session,
            [Finding(seeded.tickets_a[0], "implausible_weight", "layout check")],
            rules_version=None,
            now=datetime.now(UTC),
        )
        compute_and_store(session, [PERIOD], actor=computer)
        store(session, PLACES, by="test", source="test")
    route_plan(sessions)
    with sessions() as session:
        statement_id = list_statements(session, period=PERIOD)[0].id
    with serve(engine, url) as base:
        yield base, seeded, statement_id
    engine.dispose()


def _sign_in(page: Page, base: str, username: str) -> None:
    page.goto(base + "/login")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/(statements|contractors/).*"))


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _rgb(css: str) -> tuple[float, float, float]:
    values = [float(v) for v in re.findall(r"[\d.]+", css)[:3]]
    return values[0], values[1], values[2]


def contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(_rgb(a)), _luminance(_rgb(b))), reverse=True)
    return (la + 0.05) / (lb + 0.05)


#: The border colour of each visible form field and the background around it (the
#: nearest ancestor that paints one), as the browser computed them.
FIELD_BORDERS = """() => [...document.querySelectorAll(
    'input:not([type=hidden]):not([type=checkbox]), select, textarea')]
  .filter(el => el.offsetParent !== null)
  .map(el => {
    let bg = 'rgb(255, 255, 255)';
    for (let n = el.parentElement; n; n = n.parentElement) {
      const c = getComputedStyle(n).backgroundColor;
      if (c && c !== 'transparent' && !c.startsWith('rgba(0, 0, 0, 0')) { bg = c; break; }
    }
    const s = getComputedStyle(el);
    return {name: el.name, border: s.borderTopColor, width: s.borderTopWidth, bg};
  })"""


FIRST_FOCUSABLE = """() => {
  const el = document.querySelector('a[href], button, input:not([type=hidden]), select,'
    + ' textarea, [tabindex]:not([tabindex="-1"])');
  return [el.className, el.hash];
}"""


def check(page: Page, base: str, path: str, name: str, width: int) -> None:
    response = page.goto(base + path)
    assert response is not None
    assert response.status == 200, path
    if page.locator("#map").count():  # the screenshot once places and regions are drawn
        page.wait_for_selector("#map[data-loaded][data-regions-loaded]", state="attached")
        page.wait_for_timeout(400)  # Leaflet's zoom animation to the places
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{path} at {width} px is {scroll} px wide"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{width}-{name}.png"), full_page=True)
    # The skip link is the first focusable element, and leads to the main content; on a
    # page that focuses nothing itself it is the keyboard's first stop.
    first = page.evaluate(FIRST_FOCUSABLE)
    assert first == ["skip", "#main"], path
    if page.evaluate("document.activeElement === document.body"):
        page.keyboard.press("Tab")
        focused = page.evaluate("[document.activeElement.className, document.activeElement.hash]")
        assert focused == ["skip", "#main"], path
    assert page.locator("main#main").count() == 1
    for table in page.locator("table").all():
        assert table.locator("caption").count() == 1, f"{path}: a table without a caption"
        wrapper = table.evaluate("t => getComputedStyle(t.parentElement).overflowX")
        assert wrapper == "auto", f"{path}: a table outside a scroll box"
    for field in page.evaluate(FIELD_BORDERS):
        ratio = contrast(field["border"], field["bg"])
        assert ratio >= 3, f"{path}: field {field['name']} border {field['border']} = {ratio:.2f}:1"


@pytest.mark.parametrize("width", WIDTHS)
def test_main_pages_fit_the_screen(
    browser: Browser, site: tuple[str, Seeded, int], width: int
) -> None:
    base, _, statement_id = site
    staff = {
        "statements": f"/statements?period={PERIOD}",
        "statement": f"/statements/{statement_id}",
        "holds": "/holds?show=all",
        "tickets": f"/tickets?period={PERIOD}",
        "contracts": "/contracts",
        "contract": "/contracts/EPR-A1",
        "audit": "/audit",
        "fleet": "/fleet",
        "manual-tickets": "/manual-tickets",
        "register": f"/register?period={PERIOD}",
        "map": "/map",
        "container": "/containers/almaty-c1",
        "due": "/due",
        "mass-balance": f"/mass-balance?period={PERIOD}",
        "routes": "/routes",
        "route": "/routes/1",
        "notifications": "/account/notifications",
    }
    contractor = {
        "home": f"/contractors/{BIN_A}",
        "contractor-contracts": "/contracts",
        "contractor-due": "/due",
    }
    for username, pages in (("operator1", staff), ("eco", contractor)):
        context = browser.new_context(
            locale="en-US", viewport={"width": width, "height": 844 if width < 800 else 768}
        )
        context.set_default_timeout(10_000)
        page = context.new_page()
        if username == "operator1":
            check(page, base, "/login", "login", width)
        _sign_in(page, base, username)
        for name, path in pages.items():
            check(page, base, path, name, width)
        context.close()
    print(f"screenshots: {ARTIFACTS}")


def test_the_contrast_arithmetic() -> None:
    assert round(contrast("rgb(0, 0, 0)", "rgb(255, 255, 255)"), 1) == 21.0
    assert round(contrast("rgb(217, 222, 226)", "rgb(255, 255, 255)"), 2) < 3  # the old border
