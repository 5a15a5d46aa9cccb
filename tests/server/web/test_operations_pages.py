"""The operators' and contractors' workflow pages: holds, recorded statements,
disputes, alarms and dead letters — each act through the library, visible afterwards,
refused (with a message, changing nothing) for the wrong role, state or input."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime

import httpx
from sqlalchemy import select

from edge.protocol import Channel, topic
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.messages import Inbound
from server.ledger.accounting import StoredStatement
from server.ledger.alarms import AlarmRecord
from server.ledger.models import DeadLetter, Ticket
from server.money.disputes import list_disputes
from server.money.holds import Finding, list_holds, record
from server.money.statements import body_statement, compute_and_store, list_statements
from server.people.permissions import Permission
from tests.support.accounts import BIN_A, BIN_B, operator
from tests.support.web import PERIOD, Web, form_csrf

EN = {"Accept-Language": "en"}


def flash(client: httpx.Client, response: httpx.Response) -> tuple[str, str]:
    """Follow a form's 303 and return the message shown once, and the page."""
    assert response.status_code == 303, response.text
    page = client.get(response.headers["location"], headers=EN)
    assert page.status_code == 200
    match = re.search(r'<p id="flash" class="(ok|error)"[^>]*>(.*?)</p>', page.text, re.S)
    assert match, "no message on the page after the form"
    again = client.get(response.headers["location"], headers=EN)
    assert 'id="flash"' not in again.text  # shown once
    return f"{match.group(1)}: {html.unescape(match.group(2))}", page.text


def post(client: httpx.Client, path: str, page_path: str, **data: str) -> httpx.Response:
    """A form POST with the CSRF token of ``page_path`` (as the browser sends it)."""
    token = form_csrf(client.get(page_path).text)
    return client.post(path, data={"csrf_token": token, **data}, headers=EN)


def hold_on(web: Web, ticket_id: int, reason: str = "implausible_weight") -> int:
    with web.sessions.begin() as session:
        (hold,) = record(
            session,
            [Finding(ticket_id, reason, "1.5 t outside 0..1 t for tyres")],
            rules_version=None,
            now=datetime.now(UTC),
        )
        return hold.id


def ticket_ref(web: Web, ticket_id: int) -> str:
    with web.sessions() as session:
        t = session.get(Ticket, ticket_id)
        assert t is not None
        return f"{t.device_id}:{t.seq}"


def test_holds_release_reject_and_refusals(web: Web) -> None:
    hold_id = hold_on(web, web.seeded.tickets_a[0])
    other = hold_on(web, web.seeded.tickets_b[0], "clock_unsynced")
    with web.login("auditor1") as c:
        page = c.get("/holds", headers=EN)
        assert page.status_code == 200
        row = page.text.split(f'id="hold-{hold_id}"')[1].split("</tr>")[0]
        assert f'href="/tickets/{web.seeded.tickets_a[0]}"' in row
        assert "implausible weight" in row  # the translated reason label
        assert "1.5 t outside 0..1 t for tyres" in row
        assert "0.600" in row  # 600.5 kg as tonnes (display rounding, half-even)
        assert "almaty-rp-01" in row
        assert f'action="/holds/{hold_id}/resolve"' not in page.text  # auditors only read
        refused = post(c, f"/holds/{hold_id}/resolve", "/holds", decision="release", reason="x")
        assert refused.status_code == 403
        assert "needs the operator role" in refused.text
    with web.login("eco") as c:
        assert c.get("/holds").status_code == 403
    with web.login("operator1") as c:
        page = c.get("/holds", headers=EN)
        assert f'action="/holds/{hold_id}/resolve"' in page.text
        assert 'href="/holds"' in page.text  # in the navigation
        no_csrf = c.post(f"/holds/{hold_id}/resolve", data={"decision": "release", "reason": "ok"})
        assert no_csrf.status_code == 403
        message, _ = flash(
            c, post(c, f"/holds/{hold_id}/resolve", "/holds", decision="release", reason=" ")
        )
        assert message == "error: Refused: a resolution needs a reason"
        message, _ = flash(
            c, post(c, f"/holds/{hold_id}/resolve", "/holds", decision="pay", reason="why")
        )
        assert "decision must be one of release, reject" in message
        with web.sessions() as session:
            assert {h.hold_id for h in list_holds(session, status="open")} == {hold_id, other}
        message, page_text = flash(
            c,
            post(
                c,
                f"/holds/{hold_id}/resolve",
                "/holds",
                decision="release",
                reason="scale re-checked on site",
                next="/holds",
            ),
        )
        assert message == f"ok: Hold {hold_id}: released by operator1."
        assert f'id="hold-{hold_id}"' not in page_text  # the open list no longer shows it
        message, _ = flash(
            c, post(c, f"/holds/{other}/resolve", "/holds", decision="reject", reason="no sync")
        )
        assert message == f"ok: Hold {other}: rejected by operator1."
        again, _ = flash(
            c, post(c, f"/holds/{hold_id}/resolve", "/holds", decision="reject", reason="x")
        )
        assert again == f"error: Refused: hold {hold_id} is already released"
        every = c.get("/holds?show=all", headers=EN).text
        row = every.split(f'id="hold-{hold_id}"')[1].split("</tr>")[0]
        assert "released" in row
        assert "operator1" in row
        assert "scale re-checked on site" in row
        kk = c.get("/holds?show=all", headers={"Accept-Language": "kk"}).text
        assert "Ұсталымдар" in kk
        row = kk.split(f'id="hold-{hold_id}"')[1].split("</tr>")[0]
        assert "босатылды" in row  # status and reason labels from the Kazakh catalog
        assert "сенімсіз салмақ" in row
    with web.sessions() as session:
        done = {h.hold_id: h for h in list_holds(session)}
    assert (done[hold_id].status, done[hold_id].decided_by) == ("released", "operator1")
    assert done[hold_id].decision_reason == "scale re-checked on site"
    assert done[other].status == "rejected"


def test_statement_compute_approve_pay_and_adjust(web: Web) -> None:
    listing = f"/statements?period={PERIOD}"
    with web.login("auditor1") as c:
        page = c.get(listing, headers=EN)
        assert "No statement recorded yet." in page.text
        assert 'action="/statements/compute"' not in page.text
        assert post(c, "/statements/compute", listing, period=PERIOD).status_code == 403
    with web.login("approver1") as c:  # an operator, but not one who computes
        refused, _ = flash(c, post(c, "/statements/compute", listing, period=PERIOD))
        assert refused == (
            "error: Refused: approver1 does not hold the permission statements.compute"
        )
    with web.login("operator1") as c:
        assert c.post("/statements/compute", data={"period": PERIOD}).status_code == 403
        message, page_text = flash(c, post(c, "/statements/compute", listing, period=PERIOD))
        assert message == f"ok: {PERIOD}: 2 new draft(s), 0 unchanged, 0 new hold(s)."
        with web.sessions() as session:
            rows = {r.contractor_bin: r for r in list_statements(session, period=PERIOD)}
        a, b = rows[BIN_A], rows[BIN_B]
        row = page_text.split(f'id="statement-{a.id}"')[1].split("</tr>")[0]
        assert "draft" in row
        assert "53,082.00" in row
        assert a.sha256[:16] in row
        assert "computed by operator1" in row
        # The approve form shows contractor and total and carries the total shown.
        assert f'action="/statements/{a.id}/approve"' in row
        assert "I checked the statement of Eco Tyre LLP: 53,082.00\xa0KZT" in row
        assert 'name="expected_total" value="53082.00"' in row
        assert 'name="confirm" value="yes" required' in row
        approve = {"next": listing, "confirm": "yes", "expected_total": "53082.00"}
        own, _ = flash(c, post(c, f"/statements/{a.id}/approve", listing, **approve))
        assert own == "error: Refused: operator1 does not hold the permission statements.approve"
    operator(web.sessions, "operator1", Permission.APPROVE)
    with web.login("operator1") as c:  # now it may approve, but not its own computation
        own, _ = flash(c, post(c, f"/statements/{a.id}/approve", listing, **approve))
        assert own == (
            "error: Refused: approval must come from another account than the one that"
            f" computed statement {a.id} (operator1)"
        )
    with web.login("approver1") as c:
        unconfirmed, _ = flash(
            c, post(c, f"/statements/{a.id}/approve", listing, **(approve | {"confirm": ""}))
        )
        assert unconfirmed == (
            f"error: Refused: statement {a.id}: tick the box to confirm its contractor and"
            " total first"
        )
        stale, _ = flash(
            c,
            post(c, f"/statements/{a.id}/approve", listing, **(approve | {"expected_total": "1"})),
        )
        assert stale == (
            f"error: Refused: statement {a.id} totals 53082.00 KZT, not 1: approval refused;"
            " reload the statement and check it again"
        )
        message, page_text = flash(c, post(c, f"/statements/{a.id}/approve", listing, **approve))
        assert message == (
            f"ok: Statement {a.id} ({BIN_A}, {PERIOD}) approved by approver1: 53,082.00 KZT."
        )
        row = page_text.split(f'id="statement-{a.id}"')[1].split("</tr>")[0]
        assert "approved by approver1" in row
        assert f'action="/statements/{a.id}/pay"' in row
        assert "Paid 53,082.00\xa0KZT to Eco Tyre LLP" in row
        again, _ = flash(c, post(c, f"/statements/{a.id}/approve", listing, **approve))
        assert again == (f"error: Refused: statement {a.id} is approved, only a draft is approved")
    operator(web.sessions, "approver1", Permission.PAY)
    pay = {"confirm": "yes", "expected_total": "53082.00"}
    with web.login("approver1") as c:  # may pay now, but not what it approved
        own, _ = flash(c, post(c, f"/statements/{a.id}/pay", listing, reference="PO-1", **pay))
        assert own == (
            "error: Refused: payment must be recorded by another account than the one that"
            f" approved statement {a.id} (approver1)"
        )
    with web.login("payer1") as c:
        early, _ = flash(
            c,
            post(
                c,
                f"/statements/{b.id}/pay",
                listing,
                reference="PO-1",
                **(pay | {"expected_total": "1.00"}),
            ),
        )
        assert early == f"error: Refused: statement {b.id} is draft, only an approved one is paid"
        no_ref, _ = flash(c, post(c, f"/statements/{a.id}/pay", listing, reference="", **pay))
        assert no_ref == "error: Refused: a payment needs the payment order's reference"
        stale, _ = flash(
            c,
            post(
                c,
                f"/statements/{a.id}/pay",
                listing,
                reference="PO-2026-17",
                **(pay | {"expected_total": "53082.01"}),
            ),
        )
        assert "payment refused" in stale
        paid, _ = flash(
            c, post(c, f"/statements/{a.id}/pay", listing, reference="PO-2026-17", **pay)
        )
        assert paid == f"ok: Statement {a.id} marked paid (order PO-2026-17) by payer1."
    with web.login("operator1") as c:
        bad, _ = flash(c, post(c, "/statements/compute", listing, period="2026-13"))
        assert bad == "error: Refused: period '2026-13' is not YYYY-MM"
        # The recorded statement, shown with the statement page's own sections.
        detail = c.get(f"/statements/{a.id}", headers=EN).text
        assert 'id="status">paid<' in detail
        assert "53,082.00" in detail
        assert a.sha256 in detail
        assert "PO-2026-17" in detail
        assert "computed by operator1" in detail
        assert "approved by approver1" in detail
        assert "recorded by payer1" in detail
        assert "over cap" in detail  # 0.151 t over the 1 t cap
        # A hold found after approval: the next computation is an adjusting draft.
        hold_on(web, web.seeded.tickets_a[0])
        message, page_text = flash(c, post(c, "/statements/compute", listing, period=PERIOD))
        assert message == f"ok: {PERIOD}: 1 new draft(s), 1 unchanged, 0 new hold(s)."
        with web.sessions() as session:
            adj = session.scalars(
                select(StoredStatement).where(StoredStatement.kind == "adjustment")
            ).one()
        assert adj.adjusts_id == a.id
        assert adj.total_kzt < 0
        row = page_text.split(f'id="statement-{adj.id}"')[1].split("</tr>")[0]
        assert f"adjusts #{a.id}" in row
        assert f'name="expected_total" value="{adj.total_kzt}"' in row  # a negative total
        detail = c.get(f"/statements/{adj.id}", headers=EN).text
        assert "change against what was approved" in detail
        assert "implausible weight" in detail  # the held ticket in the recomputed body
    with web.sessions() as session:
        stored = session.get(StoredStatement, a.id)
        assert stored is not None
        assert (stored.status, stored.paid_by, stored.payment_ref) == (
            "paid",
            "payer1",
            "PO-2026-17",
        )
        assert (stored.computed_by, stored.approved_by) == ("operator1", "approver1")
        body = json.loads(stored.body)
        assert body_statement(body).canonical() == body  # the page shows exactly the body
        assert body_statement(body).hash == stored.sha256
    with web.login("eco") as c:
        overview = c.get(f"/contractors/{BIN_A}", headers=EN).text
        row = overview.split(f'id="statement-{a.id}"')[1].split("</tr>")[0]
        assert "paid" in row
        assert "53,082.00" in row
        assert f'id="statement-{b.id}"' not in overview
        assert c.get(f"/statements/{a.id}").status_code == 200
        other = c.get(f"/statements/{b.id}", headers=EN)
        assert other.status_code == 404  # another contractor's: not even confirmed
        assert "Steppe" not in other.text
        assert c.get(listing).status_code == 403


def test_disputes_scope_open_and_decide(web: Web) -> None:
    mine, theirs = (
        ticket_ref(web, web.seeded.tickets_a[1]),
        ticket_ref(web, web.seeded.tickets_b[0]),
    )
    computer = operator(web.sessions, "operator1")
    with web.sessions.begin() as session:
        compute_and_store(session, [PERIOD], actor=computer)
    with web.sessions() as session:
        rows = {r.contractor_bin: r for r in list_statements(session, period=PERIOD)}
    line_a = f"{rows[BIN_A].id}|EPR-A1@v1:collection"
    line_b = f"{rows[BIN_B].id}|EPR-B1@v1:collection"
    with web.login("steppe") as c:
        message, _ = flash(
            c, post(c, "/disputes", "/disputes", ticket=theirs, comment="STEPPE-SECRET weight")
        )
        assert message.startswith("ok: Dispute ")
        # Another contractor's statement line, by editing the form: refused, nothing stored.
        message, _ = flash(c, post(c, "/disputes", "/disputes", line=line_a, comment="mine?"))
        # Word for word what a statement that does not exist gets.
        assert message == f"error: Refused: statement {rows[BIN_A].id} not found"
        missing, _ = flash(c, post(c, "/disputes", "/disputes", line="999|X", comment="?"))
        assert missing == "error: Refused: statement 999 not found"
        # Another contractor's ticket, likewise.
        message, _ = flash(c, post(c, "/disputes", "/disputes", ticket=mine, comment="mine?"))
        assert message == f"error: Refused: ticket {mine} not found"
    with web.login("eco") as c:
        tickets = c.get(f"/tickets?period={PERIOD}", headers=EN).text
        link = f"/disputes?ticket={mine.replace(':', '%3A')}"
        assert f'href="{link}"' in tickets  # each own ticket links to a prefilled form
        assert f'value="{mine}"' in c.get(link).text
        page = c.get(f"/disputes?statement={rows[BIN_A].id}", headers=EN).text
        assert f'<option value="{line_a}" selected>' in page  # its own lines, preselected
        assert line_b not in page
        assert "STEPPE-SECRET" not in page
        assert c.post("/disputes", data={"ticket": mine, "comment": "x"}).status_code == 403
        both, _ = flash(c, post(c, "/disputes", "/disputes", comment="?"))
        assert both == "error: Refused: dispute either a ticket or a statement line"
        bad, _ = flash(c, post(c, "/disputes", "/disputes", ticket="nonsense", comment="?"))
        assert bad == "error: Refused: ticket “nonsense” is not DEVICE:SEQ"
        empty, _ = flash(c, post(c, "/disputes", "/disputes", ticket=mine, comment=" "))
        assert empty == "error: Refused: comment: say what is wrong"
        message, _ = flash(
            c, post(c, "/disputes", "/disputes", ticket=mine, comment="the tare was wrong")
        )
        assert message.startswith("ok: Dispute ")
        message, page = flash(
            c, post(c, "/disputes", "/disputes", line=line_a, comment="rate should be MRP")
        )
        assert "the tare was wrong" in page
        assert "EPR-A1@v1:collection" in page
        assert "STEPPE-SECRET" not in page
        assert 'action="/disputes/' not in page  # no decision forms for contractors
    with web.sessions() as session:
        ours = list_disputes(session, contractor_bin=BIN_A)
        assert len(ours) == 2
        assert len(list_disputes(session, contractor_bin=BIN_B)) == 1
    first = ours[0].dispute.id
    with web.login("eco") as c:
        refused = post(c, f"/disputes/{first}/decide", "/disputes", decision="accept", reason="x")
        assert refused.status_code == 403
    with web.login("auditor1") as c:
        page = c.get("/disputes", headers=EN).text
        assert "STEPPE-SECRET" in page
        assert "the tare was wrong" in page
        assert 'id="open-dispute"' not in page
        refused = post(c, f"/disputes/{first}/decide", "/disputes", decision="accept", reason="x")
        assert refused.status_code == 403
    with web.login("operator1") as c:
        no_reason, _ = flash(
            c, post(c, f"/disputes/{first}/decide", "/disputes", decision="accept", reason="")
        )
        assert no_reason == "error: Refused: a decision needs a reason"
        message, page = flash(
            c,
            post(
                c,
                f"/disputes/{first}/decide",
                "/disputes",
                decision="accept",
                reason="tare re-weighed: hold released",
            ),
        )
        assert message == f"ok: Dispute {first}: accepted by operator1."
        twice, _ = flash(
            c, post(c, f"/disputes/{first}/decide", "/disputes", decision="reject", reason="no")
        )
        assert twice == f"error: Refused: dispute {first} is already accepted"
        assert post(c, "/disputes", "/disputes", ticket=mine, comment="x").status_code == 403
    with web.login("eco") as c:
        row = c.get("/disputes", headers=EN).text.split(f'id="dispute-{first}"')[1]
        row = row.split("</tr>")[0]
        assert "accepted" in row
        assert "operator1" in row
        assert "tare re-weighed: hold released" in row
    with web.login("steppe") as c:
        page = c.get("/disputes", headers=EN).text
        assert "tare re-weighed" not in page
        assert "the tare was wrong" not in page


def test_alarms_acknowledge_and_clear(web: Web) -> None:
    with web.sessions() as session:
        alarm = session.scalars(
            select(AlarmRecord).where(AlarmRecord.code == "container_full")
        ).one()  # the seeded fill reading said "full"
        alarm_id = alarm.id
    with web.login("auditor1") as c:
        page = c.get("/alarms", headers=EN).text
        row = page.split(f'id="alarm-{alarm_id}"')[1].split("</tr>")[0]
        assert "container_full" in row
        assert "almaty-c1" in row
        assert f'action="/alarms/{alarm_id}/clear"' not in page
        assert post(c, f"/alarms/{alarm_id}/clear", "/alarms").status_code == 403
    with web.login("eco") as c:
        assert c.get("/alarms").status_code == 403
    with web.login("operator1") as c:
        message, page = flash(c, post(c, f"/alarms/{alarm_id}/acknowledge", "/alarms"))
        assert message == f"ok: Alarm {alarm_id} (container_full) acknowledged by operator1."
        row = page.split(f'id="alarm-{alarm_id}"')[1].split("</tr>")[0]
        assert "acknowledged by operator1" in row
        twice, _ = flash(c, post(c, f"/alarms/{alarm_id}/acknowledge", "/alarms"))
        assert twice == f"error: Refused: alarm {alarm_id} is acknowledged, not open"
        message, page = flash(c, post(c, f"/alarms/{alarm_id}/clear", "/alarms"))
        assert message == f"ok: Alarm {alarm_id} (container_full) cleared by operator1."
        assert f'id="alarm-{alarm_id}"' not in page  # active list
        every = c.get("/alarms?show=all", headers=EN).text
        assert "cleared by operator1" in every.split(f'id="alarm-{alarm_id}"')[1]
    with web.sessions() as session:
        stored = session.get(AlarmRecord, alarm_id)
        assert stored is not None
        assert (stored.state, stored.acknowledged_by, stored.cleared_by) == (
            "cleared",
            "operator1",
            "operator1",
        )


def test_dead_letters_preview_discard_and_reprocess(web: Web) -> None:
    device = web.seeded.device_a
    now = datetime.now(UTC)
    IngestHandler(web.sessions).handle_batch(
        [
            Inbound(topic(device, Channel.WEIGHING), b"\xff\x00\x01binary" * 20, now),
            Inbound(
                topic(device, Channel.WEIGHING), b'{"v":1,"x":"<script>alert(1)</script>"}', now
            ),
        ]
    )
    with web.sessions() as session:
        binary, text = session.scalars(
            select(DeadLetter.id).where(DeadLetter.status == "open").order_by(DeadLetter.id)
        ).all()[-2:]
    with web.login("auditor1") as c:
        assert c.get("/dead-letters").status_code == 403
    with web.login("operator1") as c:
        page = c.get("/dead-letters", headers=EN).text
        row = page.split(f'id="dead-letter-{binary}"')[1].split("</tr>")[0]
        assert "ff 00 01 62 69 6e" in row  # hex, cut at 96 bytes of 180
        assert "180 bytes" in row
        assert "not UTF-8" in row
        assert row.count(" ") > 96
        row = page.split(f'id="dead-letter-{text}"')[1].split("</tr>")[0]
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in row
        assert "<script>" not in page
        assert f"epr/v1/{device}/weighing" in row
        no_reason, _ = flash(c, post(c, f"/dead-letters/{binary}/discard", "/dead-letters"))
        assert no_reason == "error: Refused: discarding a dead letter needs a reason"
        message, page = flash(
            c,
            post(c, f"/dead-letters/{binary}/discard", "/dead-letters", reason="line noise"),
        )
        assert message == f"ok: Dead letter {binary} discarded by operator1."
        assert f'id="dead-letter-{binary}"' not in page
        message, _ = flash(c, post(c, f"/dead-letters/{text}/reprocess", "/dead-letters"))
        assert message.startswith(f"error: Dead letter {text} re-processed: rejected again")
        gone, _ = flash(c, post(c, f"/dead-letters/{binary}/reprocess", "/dead-letters"))
        assert gone == f"error: Refused: dead letter {binary} is discarded, not open"
        every = c.get("/dead-letters?status=all", headers=EN).text
        assert "discarded by operator1: line noise" in every
    with web.sessions() as session:
        letter = session.get(DeadLetter, binary)
        assert letter is not None
        assert letter.status == "discarded"


def test_navigation_by_role(web: Web) -> None:
    expected = {
        "operator1": {"/holds", "/disputes", "/alarms", "/dead-letters"},
        "auditor1": {"/holds", "/disputes", "/alarms"},
        "eco": {"/disputes"},
    }
    for user, paths in expected.items():
        with web.login(user) as c:
            page = c.get("/account", headers=EN).text
            nav = page.split("<nav>")[1].split("</nav>")[0]
            shown = {
                p
                for p in ("/holds", "/disputes", "/alarms", "/dead-letters")
                if f'href="{p}"' in nav
            }
            assert shown == paths, user
    with web.login("operator1") as c:
        ru = c.get("/disputes", headers={"Accept-Language": "ru"}).text
        assert "<h1>Споры</h1>" in ru
        kk = c.get("/dead-letters", headers={"Accept-Language": "kk"}).text
        assert "<h1>Қабылданбаған хабарлар</h1>" in kk
