"""Authentication on the JSON API: bearer tokens, cookies with CSRF, roles, 401/403."""

from __future__ import annotations

import httpx
import pytest

from server.api.auth import SESSION_COOKIE, Signer
from server.people.accounts import disable_user
from tests.support.web import Web


def test_health_is_open_and_everything_else_needs_a_caller(web: Web) -> None:
    with web.client() as anon:
        assert anon.get("/healthz").json() == {"status": "ok"}
        for path in (
            "/api/v1/me",
            "/api/v1/statements/2026-03",
            "/api/v1/tickets?period=2026-03",
            "/api/v1/fleet",
            "/api/v1/contractors",
        ):
            response = anon.get(path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == "Bearer"


def test_bearer_token_identifies_the_user(web: Web) -> None:
    with web.client() as c:
        me = c.get("/api/v1/me", headers=web.token("eco")).json()
        assert me == {
            "username": "eco",
            "display_name": "",
            "role": "contractor",
            "contractor_bin": "120440012349",
        }
        bad = c.get("/api/v1/me", headers={"Authorization": "Bearer epr_forged"})
        assert bad.status_code == 401
        basic = c.get("/api/v1/me", headers={"Authorization": "Basic ZWNvOmVjbw=="})
        assert basic.status_code == 401


def test_disabling_a_user_revokes_its_token_at_once(web: Web) -> None:
    headers = web.token("auditor1")
    with web.client() as c:
        assert c.get("/api/v1/me", headers=headers).status_code == 200
        with web.sessions.begin() as session:
            disable_user(session, "auditor1")
        assert c.get("/api/v1/me", headers=headers).status_code == 401


def test_roles(web: Web) -> None:
    with web.client() as c:
        assert c.get("/api/v1/fleet", headers=web.token("operator1")).status_code == 200
        for user in ("auditor1", "eco"):
            response = c.get("/api/v1/fleet", headers=web.token(user))
            assert response.status_code == 403
            assert "operator" in response.json()["detail"]
        # Evidence is staff's: to a contractor every ticket is "not found", its own too.
        eco = web.token("eco")
        for ticket in (web.seeded.tickets_a[0], web.seeded.tickets_b[0], 99_999):
            response = c.get(f"/api/v1/tickets/{ticket}/evidence", headers=eco)
            assert response.status_code == 404
            assert response.json() == {"detail": f"ticket {ticket} not found"}


def test_cookie_login_works_for_the_api_and_unsafe_requests_need_csrf(web: Web) -> None:
    with web.login("operator1") as browser:
        assert browser.get("/api/v1/me").json()["role"] == "operator"
        cookie = browser.cookies[SESSION_COOKIE]
        # An unsafe request with the cookie alone (what a forged cross-site form sends):
        refused = browser.post("/logout")
        assert refused.status_code == 403
        assert "CSRF" in refused.text
        assert browser.get("/api/v1/me").status_code == 200
        # A tampered cookie is refused before any lookup.
        token, _, mac = cookie.rpartition(".")
        browser.cookies.set(SESSION_COOKIE, f"{token}x.{mac}")
        assert browser.get("/api/v1/me").status_code == 401


def test_signer() -> None:
    signer = Signer(b"k" * 32)
    assert signer.unsign(signer.sign("abc")) == "abc"
    assert signer.unsign(signer.sign("abc") + "x") is None
    assert signer.unsign("abc") is None
    assert Signer(b"j" * 32).unsign(signer.sign("abc")) is None
    token = signer.csrf_token("anchor")
    assert signer.csrf_ok("anchor", token)
    assert not signer.csrf_ok("other", token)
    assert not signer.csrf_ok("anchor", None)
    with pytest.raises(ValueError, match="32 bytes"):
        Signer(b"short")


def test_login_form_needs_its_csrf_token(web: Web) -> None:
    with web.client() as c:
        c.get("/login")
        response = c.post("/login", data={"username": "eco", "password": "correct horse battery"})
        assert response.status_code == 403
        assert SESSION_COOKIE not in response.cookies


def test_login_throttled_after_repeated_failures(web: Web) -> None:
    with web.client() as c:
        token = _csrf(c)
        for _ in range(5):
            r = c.post(
                "/login",
                data={"username": "eco", "password": "wrong password", "csrf_token": token},
            )
            assert r.status_code == 401
        r = c.post(
            "/login",
            data={"username": "eco", "password": "correct horse battery", "csrf_token": token},
        )
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) > 0
        assert SESSION_COOKIE not in r.cookies


def _csrf(c: httpx.Client) -> str:
    from tests.support.web import form_csrf

    return form_csrf(c.get("/login").text)
