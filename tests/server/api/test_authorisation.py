"""One rule for who may do what, across every route of the API and the pages.

* An auditor changes nothing: every POST/PUT/PATCH/DELETE route the app has is
  walked (a new route is in the walk without anyone adding it) and refused with 403.
* Dead letters are the operators' in the API as on the pages.
* Another contractor's object is "not found", exactly as one that does not exist.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Final

import pytest
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session, sessionmaker

from server.api.app import create_app
from server.config import Settings
from server.ledger import audit
from server.money.statements import compute_and_store, list_statements
from server.people.accounts import Role
from server.people.permissions import Permission
from tests.server.api.conftest import ClientAs
from tests.support.accounts import BIN_A, BIN_B, operator
from tests.support.web import PERIOD, Web

WRITES: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Writes an auditor may make, and why: none of them changes the books.
OWN_SESSION: Final = {
    ("POST", "/login"): "signing in (anonymous)",
    ("POST", "/logout"): "ending one's own login",
    ("POST", "/account/password"): "one's own password",
    ("POST", "/account/notifications"): "one's own notification subscriptions",
    ("POST", "/account/notifications/{subscription_id}/cancel"): "one's own subscriptions",
}
#: A valid BIN with no contract in the seeded ledger.
NO_SUCH_BIN: Final = "090540023459"


def _walk(routes: Iterable[object]) -> Iterator[APIRoute]:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI >= 0.165 nests them
        if included is not None:
            yield from _walk(included.routes)
        elif isinstance(route, APIRoute):
            yield route


def write_routes() -> list[tuple[str, str]]:
    app = create_app(Settings(database_url="sqlite://", secret_key="walk-" + "x" * 32))
    return sorted(
        (method, route.path)
        for route in _walk(app.routes)
        for method in (route.methods or set()) & WRITES
    )


ALL_WRITES: Final = write_routes()
AUDITED_WRITES: Final = [w for w in ALL_WRITES if w not in OWN_SESSION]


def test_the_walk_sees_the_api_and_the_pages() -> None:
    assert set(OWN_SESSION) <= set(ALL_WRITES)
    paths = {p for _, p in AUDITED_WRITES}
    assert {"/api/v1/disputes", "/disputes", "/api/v1/holds/{hold_id}/resolve"} <= paths
    assert len(AUDITED_WRITES) >= 16


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


@pytest.mark.parametrize(
    ("method", "path"), AUDITED_WRITES, ids=[f"{m} {p}" for m, p in AUDITED_WRITES]
)
def test_an_auditor_changes_nothing(
    method: str, path: str, client_as: ClientAs, sessions: sessionmaker[Session]
) -> None:
    auditor = client_as("aud", Role.AUDITOR)
    with sessions() as session:
        before = audit.head(session).to_dict()
    form = {"reason": "x", "comment": "x", "ticket": "d:1", "decision": "release"}
    for response in (
        auditor.request(method, concrete(path), json={}),
        auditor.request(method, concrete(path), data=form),
    ):
        assert response.status_code == 403, (method, path, response.text)
    with sessions() as session:
        assert audit.head(session).to_dict() == before


def test_dead_letters_are_the_operators_in_the_api_as_on_the_pages(client_as: ClientAs) -> None:
    assert client_as("ops", Role.OPERATOR).get("/api/v1/dead-letters").status_code == 200
    for refused in (client_as("aud", Role.AUDITOR), client_as("eco", Role.CONTRACTOR, BIN_A)):
        response = refused.get("/api/v1/dead-letters")
        assert response.status_code == 403
        assert "operator" in response.json()["detail"]
    # Alarms stay readable by staff.
    assert client_as("aud2", Role.AUDITOR).get("/api/v1/alarms").status_code == 200


def test_another_contractors_object_is_not_found_like_a_missing_one(web: Web) -> None:
    computer = operator(web.sessions, "operator1", Permission.COMPUTE)
    with web.sessions.begin() as session:
        compute_and_store(session, [PERIOD], actor=computer)
    with web.sessions() as session:
        theirs = next(s.id for s in list_statements(session) if s.contractor_bin == BIN_B)
    ticket_b = web.seeded.tickets_b[0]
    missing_id = 99_999
    pairs = [  # (another contractor's, one that does not exist)
        (f"/contractors/{BIN_B}/overview", f"/contractors/{NO_SUCH_BIN}/overview"),
        (
            f"/contractors/{BIN_B}/statements/{PERIOD}",
            f"/contractors/{NO_SUCH_BIN}/statements/{PERIOD}",
        ),
        (f"/statements/{theirs}", f"/statements/{missing_id}"),
        (f"/tickets/{ticket_b}/evidence", f"/tickets/{missing_id}/evidence"),
        (
            f"/tickets?period={PERIOD}&contractor={BIN_B}",
            f"/tickets?period={PERIOD}&contractor={NO_SUCH_BIN}",
        ),
        (f"/disputes?contractor_bin={BIN_B}", f"/disputes?contractor_bin={NO_SUCH_BIN}"),
        (f"/statements?contractor_bin={BIN_B}", f"/statements?contractor_bin={NO_SUCH_BIN}"),
    ]
    same = {
        BIN_B: "ID",
        NO_SUCH_BIN: "ID",
        str(theirs): "ID",
        str(ticket_b): "ID",
        str(missing_id): "ID",
    }

    def masked(text: str) -> str:
        for old, new in same.items():
            text = text.replace(old, new)
        return text

    eco = web.token("eco")
    with web.client() as c:
        for other, missing in pairs:
            a, b = c.get("/api/v1" + other, headers=eco), c.get("/api/v1" + missing, headers=eco)
            assert (a.status_code, b.status_code) == (404, 404), (other, a.text, b.text)
            assert masked(a.text) == masked(b.text), other
            assert "Steppe" not in a.text
        # The pages answer the same way.
        for other, missing in [
            (f"/contractors/{BIN_B}", f"/contractors/{NO_SUCH_BIN}"),
            (
                f"/contractors/{BIN_B}/statements/{PERIOD}",
                f"/contractors/{NO_SUCH_BIN}/statements/{PERIOD}",
            ),
            (f"/statements/{theirs}", f"/statements/{missing_id}"),
            (f"/tickets/{ticket_b}", f"/tickets/{missing_id}"),
        ]:
            a, b = c.get(other, headers=eco), c.get(missing, headers=eco)
            assert (a.status_code, b.status_code) == (404, 404), other
            assert "not found" in a.text
            assert "Steppe" not in a.text
        # Staff see the other contractor's, and get the same 404 for a missing one.
        staff = web.token("auditor1")
        assert c.get(f"/api/v1/contractors/{BIN_B}/overview", headers=staff).status_code == 200
        missing_for_staff = c.get(f"/api/v1/contractors/{NO_SUCH_BIN}/overview", headers=staff)
        assert missing_for_staff.json() == {"detail": f"contractor {NO_SUCH_BIN} not found"}
