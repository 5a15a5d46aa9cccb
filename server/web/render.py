"""Rendering a page: the Jinja2 environment, the ``Page`` dependency, navigation.

A page is a route that takes ``PageDep`` plus the access dependency it needs
(``StaffDep``, ``OperatorDep``, ``ContractorScope``), calls the server function the
JSON API also calls, and returns ``page.render("area/name.html", …)``; a
:class:`NavItem` in ``NAV`` makes it reachable. A form's POST does its act and
redirects (303) back with a message (``server.web.flash``) that ``base.html`` shows.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Final, TypeVar
from urllib.parse import quote

from babel.dates import format_datetime
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.orm import Session

from server.api.auth import CSRF_COOKIE, CSRF_FIELD, Auth, Principal
from server.api.deps import AuthDep, NotAuthenticated, OptionalPrincipal
from server.money.amounts import LOCAL_TZ
from server.people.accounts import Account, Role
from server.web import flash
from server.web.i18n import (
    LANG_COOKIE,
    LANGUAGE_NAMES,
    SHORT_TIME_PATTERN,
    TIME_PATTERN,
    Translator,
    negotiate,
    zone_label,
)

TEMPLATES: Final = Path(__file__).with_name("templates")


@dataclass(frozen=True, slots=True)
class NavItem:
    path: str
    label: str
    """Message id."""
    roles: frozenset[Role]


_ALL: Final = frozenset(Role)
_STAFF: Final = frozenset({Role.OPERATOR, Role.AUDITOR})
_OPERATOR: Final = frozenset({Role.OPERATOR})
NAV: Final = [
    NavItem("/", "nav.home", _ALL),
    NavItem("/statements", "nav.statements", _STAFF),
    NavItem("/register", "nav.register", _STAFF),
    NavItem("/holds", "nav.holds", _STAFF),
    NavItem("/contracts", "nav.contracts", _ALL),
    NavItem("/disputes", "nav.disputes", _ALL),
    NavItem("/tickets", "nav.tickets", _ALL),
    NavItem("/manual-tickets", "nav.manual_tickets", _STAFF),
    NavItem("/alarms", "nav.alarms", _STAFF),
    NavItem("/routes", "nav.routes", _ALL),
    NavItem("/dead-letters", "nav.dead_letters", _OPERATOR),
    NavItem("/fleet", "nav.fleet", _OPERATOR),
    NavItem("/map", "nav.map", _ALL),
    NavItem("/due", "nav.due", _ALL),
    NavItem("/mass-balance", "nav.mass_balance", _STAFF),
    NavItem("/accounts", "nav.accounts", _OPERATOR),
    NavItem("/audit", "nav.audit", _STAFF),
    NavItem("/account", "nav.account", _ALL),
]


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Every time with its zone: digits in the period zone and the offset (UTC+05:00).
    env.filters["local"] = lambda d: (
        "" if d is None else format_datetime(d, TIME_PATTERN, tzinfo=LOCAL_TZ, locale="en")
    )
    env.filters["local_short"] = lambda d: (
        "" if d is None else format_datetime(d, SHORT_TIME_PATTERN, tzinfo=LOCAL_TZ, locale="en")
    )
    env.filters["urlq"] = lambda s: quote(str(s), safe="")
    # An exact amount for a form field (no grouping, no exponent): what the server compares.
    env.filters["amount"] = lambda d: format(d, "f")
    return env


ENV: Final = _environment()
T = TypeVar("T")


class Page:
    """Per-request rendering context: language, caller, CSRF token."""

    def __init__(self, request: Request, principal: Principal | None, auth: Auth) -> None:
        self.request = request
        self.principal = principal
        self.auth = auth
        settings = request.app.state.settings
        self.lang = negotiate(
            request.cookies.get(LANG_COOKIE),
            request.headers.get("accept-language"),
            settings.web_default_language,
        )
        self.t = Translator(self.lang)
        self._new_nonce: str | None = None
        self.flash = flash.decode(auth, request.cookies.get(flash.FLASH_COOKIE))
        """The message a form's redirect left for this page, shown once."""
        if principal is not None and principal.via == "cookie":
            self.csrf = auth.signer.csrf_token(principal.anchor)
        else:
            nonce = request.cookies.get(CSRF_COOKIE, "")
            if len(nonce) < 20:
                nonce = self._new_nonce = secrets.token_urlsafe(24)
            self.csrf = auth.signer.csrf_token("anon:" + nonce)

    @property
    def user(self) -> Account:
        if self.principal is None:
            raise NotAuthenticated()
        return self.principal.account

    def tonnes(self, value: Decimal) -> str:
        return self.t.number(value, 3)

    def kg(self, grams: int) -> str:
        return self.t.number(Decimal(grams).scaleb(-3), 3)

    def money(self, value: Decimal) -> str:
        return self.t.number(value, 2)

    def tenge(self, value: Decimal) -> str:
        """An amount with the currency, as the language writes it (Babel)."""
        return self.t.tenge(value)

    def tonnes_g(self, grams: int) -> str:
        """Tonnes from a weight in grams (tickets store grams)."""
        return self.t.number(Decimal(grams).scaleb(-6), 3)

    def nav(self) -> list[NavItem]:
        if self.principal is None:
            return []
        return [n for n in NAV if self.principal.account.role in n.roles]

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        body = ENV.get_template(template).render(
            page=self,
            t=self.t,
            user=self.principal.account if self.principal else None,
            path=self.request.url.path,
            here=self.here,
            csrf_field=CSRF_FIELD,
            languages=LANGUAGE_NAMES,
            now=datetime.now(LOCAL_TZ),
            zone_label=zone_label(),
            **context,
        )
        response = HTMLResponse(body, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; style-src 'self'; img-src 'self' data:; "
            "form-action 'self'; frame-ancestors 'none'"
        )
        if self.flash is not None:
            response.delete_cookie(
                flash.FLASH_COOKIE, **self.auth.cookie_options(self.request, "lax")
            )
        if self._new_nonce is not None:
            response.set_cookie(
                CSRF_COOKIE, self._new_nonce, **self.auth.cookie_options(self.request, "strict")
            )
        return response

    def act(
        self,
        session: Session,
        target: str,
        action: Callable[[], T],
        refused: type[Exception] | tuple[type[Exception], ...],
        done: Callable[[T], str],
    ) -> Response:
        """A form's library action in the request's transaction, then back to ``target``
        with one message: ``done(result)`` once committed, or the library's reason for
        refusing it (``refused``) once rolled back."""
        try:
            result = action()
            session.commit()
        except refused as exc:
            session.rollback()
            return self.refuse(target, exc)
        return flash.redirect(self.request, target, "ok", done(result))

    def refuse(self, target: str, detail: object) -> Response:
        """Back to ``target`` saying why nothing was done."""
        return flash.redirect(self.request, target, "error", self.t("flash.refused", detail=detail))

    @property
    def here(self) -> str:
        """This page's path and query, for ``next=`` links."""
        query = self.request.url.query
        return self.request.url.path + (f"?{query}" if query else "")


def _page(request: Request, principal: OptionalPrincipal, auth: AuthDep) -> Page:
    return Page(request, principal, auth)


PageDep = Annotated[Page, Depends(_page)]


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to go to after a form, never another site (open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
