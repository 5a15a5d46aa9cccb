"""Authentication on the JSON API: bearer tokens, cookies with CSRF, roles, 401/403."""

from __future__ import annotations

import httpx
import pytest
from starlette.requests import Request

from server.api.auth import SESSION_COOKIE, Auth, Signer
from server.people.accounts import disable_user
from tests.support.web import Web, serve
from tests.support.web import test_settings as settings_for


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
            "permissions": [],
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


ATTACKER, USER = "203.0.113.66", "198.51.100.7"


def _sign_in(c: httpx.Client, password: str, addr: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": addr, "Accept-Language": "en"} if addr else {}
    data = {"username": "eco", "password": password, "csrf_token": _csrf(c)}
    return c.post("/login", data=data, headers=headers)


def test_an_attacker_behind_the_proxy_is_delayed_and_the_real_user_is_not(
    web: Web, ledger_url: str
) -> None:
    engine = web.sessions.kw["bind"]
    with serve(engine, ledger_url, trusted_proxies=["127.0.0.1"]) as url:
        with httpx.Client(base_url=url, timeout=30) as attacker:
            for _ in range(5):
                assert _sign_in(attacker, "wrong password", ATTACKER).status_code == 401
            delayed = _sign_in(attacker, "correct horse battery", ATTACKER)
            assert delayed.status_code == 429
            assert int(delayed.headers["retry-after"]) >= 1
            assert "Too many failed attempts. Try again in" in delayed.text
            assert SESSION_COOKIE not in delayed.cookies
        with httpx.Client(base_url=url, timeout=30) as user:
            signed_in = _sign_in(user, "correct horse battery", USER)
            assert signed_in.status_code == 303, signed_in.text
            assert SESSION_COOKIE in signed_in.cookies


def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(web: Web) -> None:
    """Without EPR_TRUSTED_PROXIES a client cannot dodge its own delay by inventing a
    new X-Forwarded-For each time (nor blame another address)."""
    with web.client() as c:
        for i in range(5):
            assert _sign_in(c, "wrong password", f"192.0.2.{i}").status_code == 401
        assert _sign_in(c, "correct horse battery", "192.0.2.200").status_code == 429


def _csrf(c: httpx.Client) -> str:
    from tests.support.web import form_csrf

    return form_csrf(c.get("/login").text)


def _request(peer: str, forwarded: str | None = None, proto: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    if proto:
        headers.append((b"x-forwarded-proto", proto.encode()))
    scope = {"type": "http", "client": (peer, 4242), "headers": headers, "scheme": "http"}
    scope |= {"method": "GET", "path": "/", "query_string": b"", "server": ("h", 80)}
    return Request(scope)


def test_client_address_believes_only_trusted_proxies() -> None:
    plain = Auth(settings_for("sqlite://"))
    assert plain.client_address(_request("203.0.113.66", "198.51.100.7")) == "203.0.113.66"
    assert plain.client_address(_request("127.0.0.1", "198.51.100.7")) == "127.0.0.1"
    proxied = Auth(settings_for("sqlite://", trusted_proxies=["127.0.0.1", "10.0.0.0/8"]))
    assert proxied.client_address(_request("127.0.0.1", "198.51.100.7")) == "198.51.100.7"
    # What the client wrote itself (left of the address the proxies saw) is not believed.
    spoofed = _request("127.0.0.1", "192.0.2.1, 198.51.100.7, 10.1.2.3")
    assert proxied.client_address(spoofed) == "198.51.100.7"
    assert proxied.client_address(_request("203.0.113.66", "198.51.100.7")) == "203.0.113.66"
    assert proxied.client_address(_request("127.0.0.1")) == "127.0.0.1"
    assert proxied.secure(_request("127.0.0.1", proto="https"))
    assert not plain.secure(_request("127.0.0.1", proto="https"))
    with pytest.raises(ValueError, match="trusted_proxies"):
        settings_for("sqlite://", trusted_proxies=["not-an-address"])
