"""The manual tickets page: an export uploaded, a paper ticket with its scan, every
refusal shown on the page, contractors refused; the statement page's device/manual split."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from server.ledger.manual import ManualTicket
from server.ledger.models import Ticket
from server.money import holds
from tests.support.accounts import BIN_A
from tests.support.web import Web, form_csrf

EXPORT = ("Номер талона;Дата/время;Категория;Нетто\r\nБ-1;02.03.2026 08:00;tyres;120\r\n").encode(
    "cp1251"
)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PAPER = {
    "site": "almaty-rp-01",
    "ticket_no": "P-77",
    "weighed_at": "2026-03-03T10:30",
    "category": "tyres",
    "net_kg": "80",
}


def _manual_count(web: Web) -> int:
    with web.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(ManualTicket)) or 0)


def test_operator_imports_an_export_and_sees_every_problem(web: Web) -> None:
    with web.login("operator1") as client:
        client.headers["Accept-Language"] = "en"
        csrf = form_csrf(client.get("/manual-tickets").text)
        bad = b"ticket_no,weighed_at,category,net_kg\n1,yesterday,tyres,-3\n"
        r = client.post(
            "/manual-tickets/import",
            data={"csrf_token": csrf, "site": "almaty-rp-01"},
            files={"file": ("bad.csv", bad, "text/csv")},
        )
        assert r.status_code == 422
        assert "bad.csv:2:weighed_at: &#39;yesterday&#39; is not a date and time" in r.text
        assert "bad.csv:2:net_kg: -3 kg is negative" in r.text
        assert _manual_count(web) == 0
        for expected in ("1 new manual ticket(s)", "0 new manual ticket(s)"):
            r = client.post(
                "/manual-tickets/import",
                data={"csrf_token": csrf, "site": "almaty-rp-01"},
                files={"file": ("export.csv", EXPORT, "text/csv")},
            )
            assert r.status_code == 303
            assert expected in client.get("/manual-tickets").text
        page = client.get("/manual-tickets").text
        assert "Б-1" in page
        assert "export.csv, line 2" in page
    assert _manual_count(web) == 1


def test_paper_ticket_with_scan_and_hostile_uploads(web: Web) -> None:
    with web.login("operator1") as client:
        client.headers["Accept-Language"] = "en"
        csrf = form_csrf(client.get("/manual-tickets").text)
        for name, content, why in (
            ("photo.jpg", b"MZ\x90\x00" + b"\x00" * 200, "not a PDF, JPEG or PNG file"),
            ("big.png", PNG + b"\x00" * (10 * 1024 * 1024), "more than the 10 MB allowed"),
        ):
            r = client.post(
                "/manual-tickets/paper",
                data={"csrf_token": csrf, **PAPER},
                files={"scan": (name, content, "image/jpeg")},
            )
            assert r.status_code == 422
            assert why in r.text
        assert _manual_count(web) == 0
        r = client.post(
            "/manual-tickets/paper",
            data={"csrf_token": csrf, **PAPER},
            files={"scan": ("photo.png", PNG, "image/png")},
        )
        assert r.status_code == 303
        page = client.get("/manual-tickets").text
        link = re.search(r'href="(/manual-tickets/attachments/[0-9a-f]{64})"', page)
        assert link is not None
        scan = client.get(link.group(1))
        with web.sessions() as session:
            tid = session.scalar(select(ManualTicket.ticket_id))
        evidence = client.get(f"/tickets/{tid}").text
        assert 'id="manual"' in evidence
        assert "none: entered by hand" in evidence
        assert 'class="verdict good"' in evidence
        api = client.get(f"/api/v1/tickets/{tid}/evidence", headers=web.token("auditor1")).json()
        assert (api["signature"], api["evidence"], api["intact"]) == ("manual", "manual", True)
        assert api["manual"]["attachment_sha256"] == link.group(1).rsplit("/", 1)[-1]
        assert scan.content == PNG
        assert scan.headers["content-type"] == "image/png"
        # Beyond what the forms accept at all: refused before the body is read.
        huge = b"\x00" * (22 * 1024 * 1024)
        r = client.post(
            "/manual-tickets/import",
            data={"csrf_token": csrf},
            files={"file": ("huge.csv", huge, "text/csv")},
        )
        assert r.status_code == 413
        # Without the CSRF token nothing is entered.
        r = client.post(
            "/manual-tickets/paper", data=PAPER, files={"scan": ("p.png", PNG, "image/png")}
        )
        assert r.status_code == 403
    assert _manual_count(web) == 1


def test_contractor_cannot_enter_manual_tickets(web: Web) -> None:
    with web.login("eco") as client:
        client.headers["Accept-Language"] = "en"
        csrf = form_csrf(client.get("/disputes").text)
        r = client.post(
            "/manual-tickets/paper",
            data={"csrf_token": csrf, **PAPER},
            files={"scan": ("p.png", PNG, "image/png")},
        )
        assert r.status_code == 403
        r = client.post(
            "/manual-tickets/import",
            data={"csrf_token": csrf},
            files={"file": ("export.csv", EXPORT, "text/csv")},
        )
        assert r.status_code == 403
        assert client.get("/manual-tickets").status_code == 403
    assert _manual_count(web) == 0


def test_released_manual_ticket_shows_on_the_statement_line(web: Web) -> None:
    with web.login("operator1") as client:
        client.headers["Accept-Language"] = "en"
        csrf = form_csrf(client.get("/manual-tickets").text)
        client.post(
            "/manual-tickets/import",
            data={"csrf_token": csrf, "site": "almaty-rp-01"},
            files={"file": ("export.csv", EXPORT, "text/csv")},
        )
        page = client.get("/holds").text
        assert "manual evidence (entered by hand)" in page
        hold_id = next(h.hold_id for h in _open_manual_holds(web))
        r = client.post(
            f"/holds/{hold_id}/resolve",
            data={"csrf_token": csrf, "decision": "release", "reason": "mine"},
        )
        assert r.status_code == 303
        assert "another operator must release it" in client.get("/holds").text
    with web.login("approver1") as client:
        client.headers["Accept-Language"] = "en"
        csrf = form_csrf(client.get("/holds").text)
        r = client.post(
            f"/holds/{hold_id}/resolve",
            data={"csrf_token": csrf, "decision": "release", "reason": "weighbridge log seen"},
        )
        assert r.status_code == 303
        page = client.get(f"/contractors/{BIN_A}/statements/2026-03").text
    cells = re.findall(r'<td class="num (device|manual)-t">([^<]*)</td>', page)
    # The cap (1 t) is reached: the manual ticket, weighed first, is paid in full.
    assert cells == [("device", "0.880"), ("manual", "0.120")], cells
    with web.client() as client:
        body = client.get(
            f"/api/v1/contractors/{BIN_A}/statements/2026-03", headers=web.token("eco")
        ).json()
    (line,) = body["lines"]
    assert (line["tonnes"], line["device_tonnes"], line["manual_tonnes"]) == ("1", "0.88", "0.12")
    with web.sessions() as session:
        assert session.scalar(select(Ticket.net_g).where(Ticket.device_id.like("manual:%")))


def _open_manual_holds(web: Web) -> list[holds.HoldView]:
    with web.sessions() as session:
        return [
            h for h in holds.list_holds(session, status="open") if h.reason == "manual_evidence"
        ]
