"""Errors as a person sees them: the JSON API keeps FastAPI's JSON errors; a page that
needs a login redirects to the form, and any other page error is an HTML page."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.people.accounts import NotFound
from server.web.render import Page


def _is_api(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/api/") or path in ("/healthz", "/docs", "/openapi.json")


def _page(request: Request) -> Page:
    # The principal is unknown here (the dependency that failed may have been the one
    # resolving it); error pages are rendered as for a visitor, with the language chosen.
    return Page(request, None, request.app.state.auth)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if _is_api(request):
        return await http_exception_handler(request, exc)
    if exc.status_code == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    page = _page(request)
    return page.render(
        "error.html", status=exc.status_code, code=exc.status_code, detail=str(exc.detail)
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if _is_api(request):
        return await request_validation_exception_handler(request, exc)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()
    )
    return _page(request).render("error.html", status=400, code=400, detail=problems)


async def _not_found(request: Request, exc: Exception) -> Response:
    # Missing, or another contractor's: the same 404 and the same words (NotFound).
    return await _http_error(request, HTTPException(404, detail=str(exc)))


def install(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(NotFound, _not_found)
