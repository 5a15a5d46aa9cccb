"""Pages refuse ids past the ledger's BIGINT and months outside 2000..2099 with an
error page or a refusal message, never a server error (they used to answer 500)."""

from __future__ import annotations

import pytest

from tests.support.accounts import BIN_A
from tests.support.web import Web

TOO_BIG = 2**63


@pytest.mark.parametrize(
    ("method", "path", "form", "expected"),
    [
        ("GET", f"/statements/{TOO_BIG}", None, 400),
        ("GET", f"/tickets/{TOO_BIG}", None, 400),
        ("GET", f"/disputes?statement={TOO_BIG}", None, 400),
        ("GET", "/statements?period=9999-12", None, 422),
        ("GET", "/tickets?period=9999-12", None, 422),
        ("GET", "/tickets.csv?period=0001-01", None, 422),
        ("GET", f"/contractors/{BIN_A}/statements/9999-12", None, 422),
        ("POST", f"/statements/{TOO_BIG}/approve", {}, 400),
        ("POST", f"/statements/{TOO_BIG}/pay", {"reference": "PP-1"}, 400),
        ("POST", f"/holds/{TOO_BIG}/resolve", {"decision": "release", "reason": "x"}, 400),
        ("POST", f"/alarms/{TOO_BIG}/clear", {}, 400),
        ("POST", f"/dead-letters/{TOO_BIG}/discard", {"reason": "x"}, 400),
        ("POST", f"/dead-letters/{TOO_BIG}/reprocess", {}, 400),
        ("POST", f"/disputes/{TOO_BIG}/decide", {"decision": "reject", "reason": "x"}, 400),
        # A form's month is refused with a message, back on the list.
        ("POST", "/statements/compute", {"period": "9999-12"}, 303),
    ],
)
def test_pages_refuse_ids_and_months_out_of_range(
    web: Web, method: str, path: str, form: dict[str, str] | None, expected: int
) -> None:
    with web.client() as client:
        response = client.request(method, path, data=form, headers=web.token("operator1"))
    assert response.status_code == expected, response.text[:500]
    if expected == 303:
        assert response.headers["location"] == "/statements"


@pytest.mark.parametrize("ticket", [f"rp-almaty-01:{TOO_BIG}", "rp-almaty-01:" + "9" * 30])
def test_a_dispute_form_on_a_seq_past_the_ledger_is_refused(web: Web, ticket: str) -> None:
    with web.client() as client:
        response = client.post(
            "/disputes", data={"comment": "x", "ticket": ticket}, headers=web.token("eco")
        )
    assert response.status_code == 303, response.text[:500]
    assert response.headers["location"] == "/disputes"
