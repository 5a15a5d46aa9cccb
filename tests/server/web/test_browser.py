"""What a person does in a real browser: sign in, read statements, audit a ticket, run
the payment cycle."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.orm import Session, sessionmaker

from server.ledger.db import make_engine, migrate, session_factory
from server.money.holds import Finding, record
from server.money.statements import list_statements
from tests.support.accounts import BIN_A, BIN_B, PASSWORD
from tests.support.web import PERIOD, Seeded, seed, serve


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Seeded]]:
    """The app on a seeded SQLite ledger, served by uvicorn on a free port."""
    tmp = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{tmp / 'ledger.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    seeded = seed(session_factory(engine), Path(tmp))
    with serve(engine, url) as base:
        yield base, seeded
    engine.dispose()


@pytest.fixture
def fresh_site(tmp_path: Path) -> Iterator[tuple[str, Seeded, sessionmaker[Session]]]:
    """Like ``site``, but a ledger of its own: the test changes it."""
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    sessions = session_factory(engine)
    seeded = seed(sessions, tmp_path)
    with serve(engine, url) as base:
        yield base, seeded, sessions
    engine.dispose()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="en-US")
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def sign_in(page: Page, base: str, username: str, path: str = "/") -> None:
    page.goto(base + path)
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_contractor_sees_own_statement_and_not_another(
    page: Page, site: tuple[str, Seeded]
) -> None:
    base, seeded = site
    sign_in(page, base, "eco")
    expect(page).to_have_url(f"{base}/contractors/{BIN_A}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Eco Tyre LLP")
    page.locator(f'a[href="/contractors/{BIN_A}/statements/{PERIOD}"]').click()
    expect(page.locator("table.lines tfoot .total")).to_have_text("53,082.00")
    expect(page.locator("table.over-cap")).to_contain_text("over cap")
    # URL tampering: another contractor's statement and overview, a ticket's evidence,
    # all "not found", as if they did not exist.
    for path in (
        f"/contractors/{BIN_B}/statements/{PERIOD}",
        f"/contractors/{BIN_B}",
        f"/tickets/{seeded.tickets_b[0]}",
    ):
        response = page.goto(base + path)
        assert response is not None
        assert response.status == 404
        expect(page.locator("h1")).to_contain_text("Not found")
        expect(page.locator("body")).not_to_contain_text("Steppe Recycling")
    response = page.goto(f"{base}/contractors/{BIN_A}/statements/2031-01")
    assert response is not None
    assert response.status == 404
    # Signing out ends the login.
    page.goto(base + "/account")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{base}/login")
    page.goto(f"{base}/contractors/{BIN_A}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")


def test_auditor_audits_a_ticket_down_to_the_raw_frame(
    page: Page, site: tuple[str, Seeded]
) -> None:
    base, seeded = site
    sign_in(page, base, "auditor1", f"/tickets?period={PERIOD}&contractor={BIN_A}")
    expect(page.locator("table.tickets tbody tr")).to_have_count(3)
    page.get_by_role("link", name=str(seeded.tickets_a[1]), exact=True).click()
    expect(page).to_have_url(f"{base}/tickets/{seeded.tickets_a[1]}")
    expect(page.locator("#signature")).to_have_text("signature valid")
    expect(page.locator("#verdict")).to_contain_text("Evidence intact")
    expect(page.locator(".frame-text").first).to_have_text("ST,GS,+0300.25kg\\r\\n")
    expect(page.locator(".frame-hex").first).to_have_text(
        "53 54 2c 47 53 2c 2b 30 33 30 30 2e 32 35 6b 67 0d 0a"
    )
    expect(page.locator("#prev-link")).to_have_text("linked")
    expect(page.locator("#next-link")).to_have_text("linked")
    page.locator("table.chain").get_by_role("link", name=str(seeded.tickets_a[0])).click()
    expect(page.locator("#prev-link")).to_have_text("first record")


def test_language_switch(page: Page, site: tuple[str, Seeded]) -> None:
    base, _ = site
    sign_in(page, base, "operator1", "/fleet")
    expect(page.locator("h1")).to_have_text("Fleet")
    page.get_by_role("link", name="Қазақша").click()
    expect(page.locator("html")).to_have_attribute("lang", "kk")
    expect(page.locator("h1")).to_have_text("Құрылғылар паркі")
    expect(page).to_have_url(f"{base}/fleet")
    page.get_by_role("link", name="Русский").click()
    expect(page.locator("h1")).to_have_text("Парк устройств")
    expect(page.locator("#device-rp-almaty-01")).to_contain_text("в сети")
    page.goto(f"{base}/statements?period={PERIOD}")  # the choice sticks across pages
    expect(page.locator("h1")).to_contain_text("Ведомости")


def test_operator_releases_a_hold_and_approves_the_month(
    page: Page, fresh_site: tuple[str, Seeded, sessionmaker[Session]]
) -> None:
    base, seeded, sessions = fresh_site
    with sessions.begin() as session:  # the 600.5 kg ticket is held: not paid until released
        (hold,) = record(
            session,
            [Finding(seeded.tickets_a[0], "implausible_weight", "re-check the scale")],
            rules_version=None,
            now=datetime.now(UTC),
        )
        hold_id = hold.id
    sign_in(page, base, "operator1", "/holds")
    row = page.locator(f"#hold-{hold_id}")
    expect(row).to_contain_text("implausible weight")
    row.get_by_label("Reason").fill("scale re-checked, weight confirmed")
    row.get_by_role("button", name="Release (pay)").click()
    expect(page.locator("#flash")).to_have_text(f"Hold {hold_id}: released by operator1.")
    expect(page.locator(f"#hold-{hold_id}")).to_have_count(0)

    page.goto(f"{base}/statements?period={PERIOD}")  # the nav link opens this month
    page.get_by_role("button", name=f"Compute drafts for {PERIOD}").click()
    expect(page.locator("#flash")).to_contain_text("2 new draft(s)")
    with sessions() as session:
        (mine,) = [s.id for s in list_statements(session, period=PERIOD, contractor_bin=BIN_A)]
    expect(page.locator(f"#statement-{mine}")).to_contain_text("computed by operator1")
    page.get_by_role("button", name="Sign out").click()

    # Four eyes: another operator approves, after confirming contractor and total.
    sign_in(page, base, "approver1", f"/statements?period={PERIOD}")
    draft = page.locator(f"#statement-{mine}")
    expect(draft).to_contain_text("draft")
    draft.get_by_role("button", name="Approve").click()  # the tick is required first
    expect(page.locator("#flash")).to_have_count(0)
    draft.get_by_label("I checked the statement of Eco Tyre LLP: 53,082.00 KZT").check()
    draft.get_by_role("button", name="Approve").click()
    expect(page.locator("#flash")).to_have_text(
        f"Statement {mine} ({BIN_A}, {PERIOD}) approved by approver1: 53,082.00 KZT."
    )
    expect(page.locator(f"#statement-{mine}")).to_contain_text("approved by approver1")
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, base, "eco")
    expect(page).to_have_url(f"{base}/contractors/{BIN_A}")
    approved = page.locator(f"#statement-{mine}")
    expect(approved).to_contain_text("approved")
    expect(approved.locator("td.num")).to_have_text("53,082.00")
    approved.get_by_role("link", name=str(mine)).click()
    expect(page.locator("#status")).to_have_text("approved")
    expect(page.locator("table.lines tfoot .total")).to_have_text("53,082.00")
