"""The audit trail page: staff only, filtered and paged in SQL, entries linked to their
objects, the chain verified and its head shown; a broken chain is said so."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from server.ledger import audit
from server.ledger.audit import EntryFilter, entries
from tests.support.tamper import bypassing_append_only
from tests.support.web import Web

EN = {"Accept-Language": "en"}


def _add(web: Web, n: int) -> None:
    with web.sessions.begin() as session:
        for i in range(n):
            audit.append(
                session,
                actor="ops.anna" if i % 2 else "head.of.payments",
                action="hold.resolved" if i % 3 else "statement.approved",
                subject=f"statement {i + 1}" if i % 3 == 0 else f"hold {i + 1}",
                data={"credential": "token #3", "n": i},
                now=datetime(2026, 4, 1 + i % 20, 10, tzinfo=UTC),
            )


def test_staff_read_filter_and_page_the_trail(web: Web) -> None:
    _add(web, 120)
    with web.login("auditor1") as c:
        page = c.get("/audit", headers=EN)
        assert page.status_code == 200
        assert "Chain verified" in page.text
        with web.sessions() as session:
            head = audit.head(session)
        assert head.hash in page.text
        assert page.text.count('<tr id="entry-') == 100
        assert '<a href="/statements/' in page.text  # linked to its object
        assert "token #3" in page.text  # the credential in its own column
        older = page.text.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
        second = c.get(older.replace("&amp;", "&"), headers=EN)
        with web.sessions() as session:
            total = audit.head(session).seq
        assert second.text.count('<tr id="entry-') == total - 100
        first_seqs = set(page.text.split('<tr id="entry-')[1:])
        assert not first_seqs & set(second.text.split('<tr id="entry-')[1:])
        only = c.get(
            "/audit",
            params={"account": "ops.anna", "action": "statement.approved", "object": "statement"},
            headers=EN,
        )
        rows = only.text.split('<tr id="entry-')[1:]
        assert rows
        assert all("ops.anna" in r and "statement.approved" in r for r in rows)
        day = c.get("/audit", params={"from": "2026-04-03", "to": "2026-04-03"}, headers=EN)
        assert 0 < day.text.count('<tr id="entry-') < 30
        # Hostile filters: a refusal in words, never an error or an injection.
        bad = c.get("/audit", params={"from": "2026-13-45"}, headers=EN)
        assert bad.status_code == 200
        assert "A date is written YYYY-MM-DD" in bad.text
        assert c.get("/audit", params={"before": "0"}).status_code == 400  # as every page
        for hostile in ("' OR 1=1 --", "%", "_", "<script>"):
            r = c.get("/audit", params={"account": hostile, "object": hostile}, headers=EN)
            assert r.status_code == 200
            assert "No entries match." in r.text
            assert "<script>" not in r.text.split("<main")[1]
    with web.login("eco") as c:
        assert c.get("/audit").status_code == 403
    with web.login("operator1") as c:
        assert c.get("/audit").status_code == 200


def test_entries_filter_in_sql(web: Web) -> None:
    _add(web, 12)
    with web.sessions() as session:
        one = entries(session, EntryFilter(subject="statement 4"))
        kind = entries(session, EntryFilter(subject="hold"), limit=3)
    assert [e.subject for e in one.entries] == ["statement 4"]
    assert len(kind.entries) == 3
    assert kind.older == kind.entries[-1].seq
    assert all(e.subject.startswith("hold ") for e in kind.entries)


def test_a_broken_chain_is_shown(web: Web) -> None:
    _add(web, 3)
    with web.login("auditor1") as c:
        assert "Chain verified" in c.get("/audit", headers=EN).text
        with web.sessions.begin() as session, bypassing_append_only(session):
            session.execute(text("UPDATE audit_log SET actor = 'someone else' WHERE seq = 2"))
        # The page shows the verification of the last minute, with its time, until
        # someone asks for a new one.
        assert "Chain verified" in c.get("/audit", headers=EN).text
        page = c.get("/audit", params={"verify": "now"}, headers=EN)
        assert c.get("/audit", params={"verify": "later"}).status_code == 400
    assert "Chain broken" in page.text
    assert "entry 2: content does not match its hash (edited)" in page.text
