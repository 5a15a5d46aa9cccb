"""Who is asking: bearer tokens for the JSON API, signed session cookies for the pages.

* ``Authorization: Bearer epr_…`` — an API token (``epr-server token create``). A
  request that presents a bearer header is judged by it alone.
* ``epr_session`` cookie — ``<login token>.<HMAC>``, HttpOnly, SameSite=Lax, Secure
  over https. The signature lets a forged or truncated cookie be refused without a
  database query; the login row (``server.people.logins``) lets it be ended at logout,
  password change or when the user is disabled.
* CSRF: a request authenticated by the cookie that changes anything (not GET/HEAD/
  OPTIONS) must carry a token, in the ``csrf_token`` form field or the
  ``X-CSRF-Token`` header, equal to HMAC(key, login) — so it is bound to the login
  and cannot be made by another site. Before sign-in the login form is bound the same
  way to a random ``epr_csrf`` cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import secrets
from dataclasses import dataclass
from typing import Any, Final, Literal

from fastapi import Request, Response
from sqlalchemy.orm import Session

from server.config import Settings
from server.people.accounts import Account, LoginPolicy
from server.people.logins import resolve_login
from server.people.passwords import ScryptCost
from server.people.permissions import Actor
from server.people.tokens import resolve_token

log = logging.getLogger(__name__)

SESSION_COOKIE: Final = "epr_session"
CSRF_COOKIE: Final = "epr_csrf"
CSRF_FIELD: Final = "csrf_token"
CSRF_HEADER: Final = "X-CSRF-Token"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Signer:
    """HMAC-SHA256 with one key, domain-separated by purpose."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the secret key must be at least 32 bytes")
        self._key = key

    def _mac(self, purpose: str, value: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}:{value}".encode(), hashlib.sha256).digest())

    def sign(self, value: str) -> str:
        return f"{value}.{self._mac('cookie', value)}"

    def unsign(self, signed: str) -> str | None:
        value, _, mac = signed.rpartition(".")
        if not value or not hmac.compare_digest(mac, self._mac("cookie", value)):
            return None
        return value

    def csrf_token(self, anchor: str) -> str:
        return self._mac("csrf", anchor)

    def csrf_ok(self, anchor: str, token: str | None) -> bool:
        return bool(anchor and token) and hmac.compare_digest(str(token), self._mac("csrf", anchor))


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller, and how it proved itself."""

    account: Account
    via: Literal["bearer", "cookie"]
    anchor: str = ""
    """For cookie logins: the login's digest, which CSRF tokens are bound to."""
    credential: str = ""
    """What the audit log records besides the name: ``token #12`` or ``web session``."""

    @property
    def actor(self) -> Actor:
        return Actor(self.account, self.credential)


class Auth:
    """Request authentication for one app; built by ``create_app`` from the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        if settings.secret_key is not None:
            key = settings.secret_key.get_secret_value().encode("utf-8")
        else:
            log.warning(
                "EPR_SECRET_KEY is not set: using a random key, so logins end when this "
                "process does and other server processes cannot read its cookies"
            )
            key = secrets.token_bytes(32)
        self.signer = Signer(key)
        self.policy = LoginPolicy(
            max_failures=settings.login_max_failures,
            max_failures_per_addr=settings.login_max_failures_per_addr,
            max_failures_per_account=settings.login_max_failures_per_account,
            window_s=settings.login_window_s,
            max_delay_s=settings.login_max_delay_s,
            cost=ScryptCost(log2_n=settings.password_scrypt_log2_n),
        )
        self.proxies = [ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies]

    def principal(self, request: Request, session: Session) -> Principal | None:
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, credential = header.partition(" ")
            if scheme.lower() != "bearer":
                return None
            found = resolve_token(session, credential.strip())
            if found is None:
                return None
            account, token_id = found
            return Principal(account, "bearer", credential=f"token #{token_id}")
        cookie = request.cookies.get(SESSION_COOKIE)
        token = self.signer.unsign(cookie) if cookie else None
        if token is None:
            return None
        login = resolve_login(session, token, idle_s=self.settings.session_idle_s)
        if login is None:
            return None
        return Principal(login.account, "cookie", login.token_hash, credential="web session")

    # ------------------------------------------------------------------ cookies

    def _trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.proxies)

    def client_address(self, request: Request) -> str:
        """Who is asking, for login throttling: the socket peer; behind one of
        ``trusted_proxies``, the nearest address in ``X-Forwarded-For`` that is not a
        trusted proxy itself (what a client writes further left is not believed)."""
        peer = request.client.host if request.client else ""
        if not self._trusted(peer):
            return peer
        hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",")]
        for hop in reversed([h for h in hops if h]):
            if not self._trusted(hop):
                return hop
        return peer

    def secure(self, request: Request) -> bool:
        if self.settings.cookie_secure is not None:
            return self.settings.cookie_secure
        if request.client is not None and self._trusted(request.client.host):
            proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip()
            if proto:
                return proto == "https"
        return request.url.scheme == "https"

    def cookie_options(
        self, request: Request, samesite: Literal["lax", "strict"]
    ) -> dict[str, Any]:
        return {"httponly": True, "samesite": samesite, "secure": self.secure(request), "path": "/"}

    def set_login_cookie(self, request: Request, response: Response, token: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            self.signer.sign(token),
            max_age=self.settings.session_ttl_s,
            **self.cookie_options(request, "lax"),
        )

    def clear_login_cookie(self, request: Request, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, **self.cookie_options(request, "lax"))

    def anonymous_anchor(self, request: Request, response: Response | None = None) -> str:
        """The pre-login CSRF anchor: the ``epr_csrf`` cookie, made when missing."""
        nonce = request.cookies.get(CSRF_COOKIE, "")
        if len(nonce) < 20:
            nonce = secrets.token_urlsafe(24)
            if response is not None:
                response.set_cookie(CSRF_COOKIE, nonce, **self.cookie_options(request, "strict"))
        return "anon:" + nonce
