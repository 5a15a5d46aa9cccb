"""The pages over HTTP: login, scope by URL tampering, evidence, fleet, CSRF, language."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy import select

from edge.evidence import DeviceKey
from edge.protocol import Channel, encode, topic
from server.api.auth import SESSION_COOKIE
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.messages import Inbound
from server.fleet.registry import register_scale
from server.fleet.remote_config import issue_config
from server.ledger.models import Ticket
from tests.support.accounts import BIN_A, BIN_B
from tests.support.builders import fake_device, register
from tests.support.web import PERIOD, T0, Web, form_csrf

EN = {"Accept-Language": "en"}


def test_pages_need_a_login_and_come_back_after_it(web: Web) -> None:
    with web.client() as c:
        r = c.get(f"/tickets?period={PERIOD}")
        assert r.status_code == 303
        assert unquote(r.headers["location"]) == f"/login?next=/tickets?period={PERIOD}"
        login = c.get(r.headers["location"], headers=EN)
        assert 'name="next" value="/tickets?period=2026-03"' in login.text
        r = c.post(
            "/login",
            data={
                "username": "eco",
                "password": "correct horse battery",
                "csrf_token": form_csrf(login.text),
                "next": f"/tickets?period={PERIOD}",
            },
        )
        assert r.status_code == 303
        assert r.headers["location"] == f"/tickets?period={PERIOD}"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=lax" in cookie
    with web.client() as c:  # never sent off-site after login
        login = c.get("/login")
        r = c.post(
            "/login",
            data={
                "username": "eco",
                "password": "correct horse battery",
                "csrf_token": form_csrf(login.text),
                "next": "//evil.example/",
            },
        )
        assert r.headers["location"] == "/"


def test_contractor_sees_own_pages_and_nothing_else(web: Web) -> None:
    with web.login("eco") as c:
        home = c.get("/")
        assert home.headers["location"] == f"/contractors/{BIN_A}"
        page = c.get(f"/contractors/{BIN_A}", headers=EN)
        assert page.status_code == 200
        assert "Eco Tyre LLP" in page.text
        assert "Delivered tonnes by month and category" in page.text
        detail = c.get(f"/contractors/{BIN_A}/statements/{PERIOD}", headers=EN)
        assert detail.status_code == 200
        assert "53,082.00" in detail.text  # the paid line
        assert "over cap" in detail.text  # 0.15075 t over the 1 t cap
        assert "0.151" in detail.text
        # URL tampering: another contractor's pages.
        for path in (
            f"/contractors/{BIN_B}",
            f"/contractors/{BIN_B}/statements/{PERIOD}",
            f"/tickets?period={PERIOD}&contractor={BIN_B}",
            f"/tickets.csv?period={PERIOD}&contractor={BIN_B}",
        ):
            r = c.get(path, headers=EN)
            assert r.status_code == 404, path
            assert "Steppe" not in r.text
        for ticket in web.seeded.tickets_b + web.seeded.tickets_a:
            assert c.get(f"/tickets/{ticket}").status_code == 404
        assert c.get("/fleet").status_code == 403
        assert c.get("/statements").status_code == 403
        tickets = c.get(f"/tickets?period={PERIOD}", headers=EN)
        assert "3 tickets, 1.151 t net" in tickets.text
        assert "rp-aktobe-01" not in tickets.text
        csv = c.get(f"/tickets.csv?period={PERIOD}")
        assert len(csv.text.splitlines()) == 4


def test_staff_statement_list_links_every_contractor(web: Web) -> None:
    with web.login("auditor1") as c:
        page = c.get(f"/statements?period={PERIOD}", headers=EN)
        assert f"/contractors/{BIN_A}/statements/{PERIOD}" in page.text
        assert f"/contractors/{BIN_B}/statements/{PERIOD}" in page.text
        assert c.get(f"/contractors/{BIN_B}/statements/{PERIOD}").status_code == 200
        bad = c.get("/statements?period=2026-13", headers=EN)
        assert bad.status_code == 422
        assert "not YYYY-MM" in bad.text


def test_auditor_evidence_page_verifies_live(web: Web) -> None:
    second = web.seeded.tickets_a[1]
    with web.login("auditor1") as c:
        page = c.get(f"/tickets/{second}", headers=EN)
        assert page.status_code == 200
        text = page.text
        assert "signature valid" in text
        assert "Evidence intact" in text
        assert "ST,GS,+0300.25kg\\r\\n" in text  # the raw frame as text ...
        assert "53 54 2c 47 53 2c 2b 30 33 30 30 2e 32 35 6b 67 0d 0a" in text  # ... and as hex
        assert f'href="/tickets/{web.seeded.tickets_a[0]}"' in text  # previous in the chain
        assert f'href="/tickets/{web.seeded.tickets_a[2]}"' in text  # next
        assert text.count(">linked<") == 2
        assert c.get("/tickets/999999", headers=EN).status_code == 404


def test_operator_fleet_page(web: Web) -> None:
    with web.login("operator1") as c:
        page = c.get("/fleet", headers=EN)
        assert page.status_code == 200
        row = page.text.split('id="device-rp-almaty-01"')[1].split("</tr>")[0]
        assert "online" in row
        assert "almaty-c1" in row
        assert "87.5%" in row
        other = page.text.split('id="device-rp-aktobe-01"')[1].split("</tr>")[0]
        assert "never seen" in other
    with web.login("auditor1") as c:
        assert c.get("/fleet").status_code == 403


def test_device_page_shows_outbox_history_alarms_config_and_certificates(
    web: Web, tmp_path: Path
) -> None:
    dev = fake_device(tmp_path, "rp-page-01", start=T0)
    register(web.sessions, dev, site_id="almaty-rp-01", region="Almaty")
    with web.sessions.begin() as s:
        register_scale(
            s,
            "page-s1",
            device_id=dev.device_id,
            certificate_no="KZ-EXPIRED-7",
            verified_until=date(2026, 1, 31),
            by="ops.almaty",
        )
        issue_config(
            s,
            dev.device_id,
            {"devices": {"s1": {"tare_kg": "20"}}},
            key=DeviceKey.generate(),
            by="ops.almaty",
            now=T0,
        )
    received = datetime.now(UTC)
    reports = [dev.health(seq=1, outbox_depth=7), dev.health(seq=2, outbox_depth=0)]
    IngestHandler(web.sessions).handle_batch(
        [Inbound(topic(dev.device_id, Channel.HEALTH), encode(h), received) for h in reports]
        + [
            Inbound(
                topic(dev.device_id, Channel.ALARM),
                encode(dev.alarm("scale_offline:s1", seq=1, message="no frame for 61 s")),
                received,
            )
        ]
    )
    with web.login("operator1") as c:
        page = c.get(f"/fleet/devices/{dev.device_id}", headers=EN)
        assert page.status_code == 200
        text = page.text
        assert '<td class="num" id="outbox-depth">0</td>' in text  # the latest report
        health = text.split('id="health"')[1].split("</table>")[0]
        assert health.count("<tr>") == 3  # the header and both reports
        assert "device:scale_offline:s1" in text
        assert "no frame for 61 s" in text
        config = text.split('id="config"')[1].split("</table>")[0]
        assert "Revision wanted</th><td>1" in config
        assert "<td>no</td>" in config  # not applied yet
        scales = text.split('id="scales"')[1].split("</table>")[0]
        assert "KZ-EXPIRED-7" in scales
        assert "expired" in scales
        fleet_page = c.get("/fleet", headers=EN).text
        assert f'href="/fleet/devices/{dev.device_id}"' in fleet_page
        # Unknown, hostile or oversized ids: the same 404, nothing echoed unescaped.
        for bad in (
            "rp-nobody",
            "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            "x" * 5000,
            "..%2F..%2Ffleet",
        ):
            r = c.get(f"/fleet/devices/{bad}", headers=EN)
            assert r.status_code == 404, bad
            assert "<script>alert(1)" not in r.text
    with web.login("eco") as c:
        assert c.get(f"/fleet/devices/{dev.device_id}").status_code == 403
    with web.login("auditor1") as c:
        assert c.get(f"/fleet/devices/{dev.device_id}").status_code == 403


def test_language_switch_and_fallbacks(web: Web) -> None:
    with web.login("auditor1") as c:
        assert '<html lang="ru">' in c.get("/statements", headers={"Accept-Language": ""}).text
        assert '<html lang="en">' in c.get("/statements", headers=EN).text
        r = c.get("/lang/kk", params={"next": f"/tickets?period={PERIOD}"})
        assert r.headers["location"] == f"/tickets?period={PERIOD}"
        page = c.get(r.headers["location"], headers=EN)  # the chosen language wins
        assert '<html lang="kk">' in page.text
        assert "Өлшеу талондары" in page.text
        assert (
            c.get("/lang/kk", params={"next": "https://evil.example/"}).headers["location"] == "/"
        )
        c.get("/lang/xx")  # unknown: ignored
        assert '<html lang="kk">' in c.get("/statements").text


def test_password_change_needs_csrf_and_ends_the_login(web: Web) -> None:
    with web.login("eco") as c:
        account = c.get("/account", headers=EN)
        form = {
            "current": "correct horse battery",
            "new": "a brand new secret",
            "repeat": "a brand new secret",
        }
        assert c.post("/account/password", data=form).status_code == 403
        wrong = c.post(
            "/account/password",
            data=form | {"current": "nope nope nope", "csrf_token": form_csrf(account.text)},
            headers=EN,
        )
        assert wrong.status_code == 400
        assert "current password is wrong" in wrong.text
        done = c.post("/account/password", data=form | {"csrf_token": form_csrf(account.text)})
        assert done.status_code == 303
        assert c.get("/account").status_code == 303  # signed out
    with web.login("eco", "a brand new secret") as c:
        assert c.get("/account").status_code == 200
        logout = c.post("/logout", data={"csrf_token": form_csrf(c.get("/account").text)})
        assert logout.status_code == 303
        assert c.get("/account").status_code == 303
        assert SESSION_COOKIE not in c.cookies


def test_evidence_page_shows_the_signed_configuration_of_the_weighing(
    web: Web, tmp_path: Path
) -> None:
    dev = fake_device(tmp_path, "rp-cfg-02", start=T0)
    register(web.sessions, dev, site_id="almaty-rp-01", region="Almaty")
    with web.sessions.begin() as s:
        row = issue_config(
            s,
            dev.device_id,
            {"devices": {"s1": {"tare_kg": "20"}}},
            key=DeviceKey.generate(),
            by="ops.almaty",
            now=T0,
        )
    dev.journal.config_revision = row.revision
    weighing = dev.weigh("280", site_id="almaty-rp-01", tare_kg="20")
    IngestHandler(web.sessions).handle_batch(
        [Inbound(topic(dev.device_id, Channel.WEIGHING), encode(weighing), T0)]
    )
    with web.sessions() as s:
        ticket = s.scalar(select(Ticket.id).where(Ticket.device_id == dev.device_id))
    with web.login("auditor1") as c:
        text = c.get(f"/tickets/{ticket}", headers=EN).text
        assert '<dd id="config-revision">1</dd>' in text
        assert "ops.almaty" in text
        assert "verifies over device, revision, time and these settings" in text
        assert "&#34;tare_kg&#34;: &#34;20&#34;" in text or '"tare_kg": "20"' in text
        # A weighing under the file's own settings says so.
        plain = c.get(f"/tickets/{web.seeded.tickets_a[0]}", headers=EN).text
        assert "recorded under the device&#39;s own configuration file" in plain
    with web.client() as c:
        api = c.get(f"/api/v1/tickets/{ticket}/evidence", headers=web.token("auditor1")).json()
    assert api["config"]["revision"] == 1
    assert api["config"]["settings"] == {"devices": {"s1": {"tare_kg": "20"}}}
    assert (api["config"]["issued_by"], api["config"]["signature_ok"]) == ("ops.almaty", True)


def test_staff_open_on_the_last_month_with_data_and_times_carry_their_zone(web: Web) -> None:
    with web.login("auditor1") as c:
        page = c.get("/statements", headers=EN)  # no period: not the empty current month
        assert f"/contractors/{BIN_A}/statements/{PERIOD}" in page.text
        tickets = c.get("/tickets", headers=EN)
        assert f'value="{PERIOD}"' in tickets.text
        assert "0 tickets" not in tickets.text
        assert "UTC+05:00" in tickets.text  # each weighing time with its offset
        assert "Times: Asia/Almaty, UTC+05:00" in tickets.text
    with web.login("eco") as c:  # a contractor still opens on the current month
        assert f'value="{PERIOD}"' not in c.get("/tickets", headers=EN).text
