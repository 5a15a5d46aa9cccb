"""Signing in and out, the language switch, and the user's own password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from server.api.auth import SESSION_COOKIE, Auth
from server.api.deps import CurrentUser
from server.people.accounts import (
    AccountError,
    LoginRefused,
    LoginThrottled,
    authenticate,
    find_user,
    set_password,
)
from server.people.logins import close_login, open_login
from server.people.passwords import PasswordError, ScryptCost, verify_password
from server.web.i18n import LANG_COOKIE, LANGUAGES
from server.web.render import PageDep, safe_next

router = APIRouter(include_in_schema=False)


def _client(request: Request) -> str:
    auth: Auth = request.app.state.auth
    return auth.client_address(request)


@router.get("/login")
def login_form(page: PageDep, next: str = "/") -> Response:
    if page.principal is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return page.render("login.html", next=safe_next(next), error=None, username="")


@router.post("/login")
def login(
    request: Request,
    page: PageDep,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=2000)],
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    auth: Auth = request.app.state.auth
    if not auth.signer.csrf_ok(_anonymous_anchor(request), csrf_token):
        raise HTTPException(403, detail="CSRF token missing or wrong: reload the page")
    sessions: sessionmaker[Session] = request.app.state.sessions
    target = safe_next(next)
    try:
        account = authenticate(
            sessions, username, password, remote_addr=_client(request), policy=auth.policy
        )
    except LoginThrottled as exc:
        response = page.render(
            "login.html",
            status=429,
            next=target,
            username=username,
            error=page.t("login.throttled", seconds=exc.retry_after_s),
        )
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    except LoginRefused:
        return page.render(
            "login.html", status=401, next=target, username=username, error=page.t("login.failed")
        )
    with sessions.begin() as session:
        token = open_login(
            session,
            account,
            ttl_s=auth.settings.session_ttl_s,
            remote_addr=_client(request),
            user_agent=request.headers.get("user-agent", ""),
        )
    redirect = RedirectResponse(target, status_code=303)
    auth.set_login_cookie(request, redirect, token)
    return redirect


def _anonymous_anchor(request: Request) -> str:
    return "anon:" + request.cookies.get("epr_csrf", "")


@router.post("/logout")
def logout(request: Request, user: CurrentUser) -> Response:
    # CurrentUser has checked the CSRF token of this cookie-authenticated POST.
    auth: Auth = request.app.state.auth
    cookie = request.cookies.get(SESSION_COOKIE, "")
    token = auth.signer.unsign(cookie)
    if token is not None:
        sessions: sessionmaker[Session] = request.app.state.sessions
        with sessions.begin() as session:
            close_login(session, token)
    response = RedirectResponse("/login", status_code=303)
    auth.clear_login_cookie(request, response)
    return response


@router.get("/lang/{code}")
def switch_language(request: Request, code: str, next: str = "/") -> Response:
    """A plain link, not a form: it changes a display preference, nothing in the ledger."""
    response = RedirectResponse(safe_next(next), status_code=303)
    if code in LANGUAGES:
        auth: Auth = request.app.state.auth
        response.set_cookie(
            LANG_COOKIE, code, max_age=365 * 86400, **auth.cookie_options(request, "lax")
        )
    return response


@router.get("/account")
def account(page: PageDep, user: CurrentUser) -> Response:
    return page.render("account.html", message=None, error=None)


@router.post("/account/password")
def change_password(
    request: Request,
    page: PageDep,
    user: CurrentUser,
    current: Annotated[str, Form(max_length=2000)],
    new: Annotated[str, Form(max_length=2000)],
    repeat: Annotated[str, Form(max_length=2000)],
) -> Response:
    auth: Auth = request.app.state.auth
    sessions: sessionmaker[Session] = request.app.state.sessions
    with sessions() as session:
        row = find_user(session, user.username)
        stored = row.password_hash if row else ""
    error = None
    if not verify_password(current, stored):
        error = page.t("account.wrong_current")
    elif new != repeat:
        error = page.t("account.mismatch")
    else:
        try:
            with sessions.begin() as session:
                set_password(
                    session,
                    user.username,
                    new,
                    cost=ScryptCost(log2_n=auth.settings.password_scrypt_log2_n),
                )
        except (PasswordError, AccountError) as exc:
            error = str(exc)
    if error is not None:
        return page.render("account.html", status=400, message=None, error=error)
    # The change ended every login of this user, this one included: sign in again.
    response = RedirectResponse("/login?changed=1", status_code=303)
    auth.clear_login_cookie(request, response)
    return response
