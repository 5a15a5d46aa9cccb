"""The accounts page: operators see who holds which permission; an account
administrator grants and revokes them, each change audited under its name."""

from __future__ import annotations

import json

from sqlalchemy import select

from server.ledger.accounting import AuditEntry
from server.people.accounts import find_user
from server.people.permissions import Permission, permissions_of
from tests.server.web.test_operations_pages import EN, flash, post
from tests.support.accounts import operator
from tests.support.web import Web


def held(web: Web, username: str) -> set[str]:
    with web.sessions() as session:
        user = find_user(session, username)
        assert user is not None
        return {p.value for p in permissions_of(session, user.id)}


def test_an_administrator_grants_and_revokes_on_the_accounts_page(web: Web) -> None:
    with web.login("auditor1") as c:
        assert c.get("/accounts").status_code == 403
    with web.login("approver1") as c:  # an operator, not an administrator: reads only
        page = c.get("/accounts", headers=EN).text
        row = page.split('id="account-payer1"')[1].split("</tr>")[0]
        assert "statements.pay" in row
        assert 'action="/accounts/payer1/grant"' not in page
        refused, _ = flash(
            c, post(c, "/accounts/approver1/grant", "/accounts", permission="statements.pay")
        )
        assert refused == ("error: Refused: approver1 does not hold the permission accounts.admin")
    operator(web.sessions, "operator1", Permission.ADMIN)
    with web.login("operator1") as c:
        page = c.get("/accounts", headers=EN).text
        assert 'action="/accounts/approver1/grant"' in page
        assert 'action="/accounts/auditor1/grant"' not in page  # auditors hold nothing
        message, page = flash(
            c, post(c, "/accounts/approver1/grant", "/accounts", permission="statements.pay")
        )
        assert message == "ok: statements.pay granted to approver1 by operator1."
        assert "statements.pay" in page.split('id="account-approver1"')[1].split("</tr>")[0]
        refused, _ = flash(
            c, post(c, "/accounts/auditor1/grant", "/accounts", permission="statements.pay")
        )
        assert "only operators can hold statements.pay" in refused
        unknown, _ = flash(c, post(c, "/accounts/payer1/grant", "/accounts", permission="all"))
        assert unknown.startswith("error: Refused: permission 'all': one of")
        message, _ = flash(
            c, post(c, "/accounts/approver1/revoke", "/accounts", permission="statements.pay")
        )
        assert message == "ok: statements.pay revoked from approver1 by operator1."
        again, _ = flash(
            c, post(c, "/accounts/approver1/revoke", "/accounts", permission="statements.pay")
        )
        assert again == "ok: approver1: statements.pay unchanged."
    assert held(web, "approver1") == {"statements.approve"}
    with web.sessions() as session:
        entries = [
            (e.actor, e.action, json.loads(e.data))
            for e in session.scalars(
                select(AuditEntry).where(AuditEntry.subject == "user approver1")
            )
        ]
    assert [(a, act, d["credential"]) for a, act, d in entries[-2:]] == [
        ("operator1", "account.permission_granted", "web session"),
        ("operator1", "account.permission_revoked", "web session"),
    ]
