"""``create_app(settings)``: builds engine, sessions, auth and routers; nothing at import time."""

from __future__ import annotations

from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from server import __version__
from server.api.auth import Auth
from server.api.deps import RequireRole, current_user, documented
from server.api.routes import (
    accounts,
    audit,
    contractors,
    contracts,
    disputes,
    documents,
    fleet,
    health,
    holds,
    logistics,
    me,
    operations,
    routes,
    statements,
    tickets,
)
from server.config import Settings
from server.ledger.db import make_engine, session_factory
from server.money.amounts import LOCAL_TZ
from server.people.accounts import Role
from server.web import errors
from server.web.limits import BodyLimit
from server.web.routes import accounts as account_pages
from server.web.routes import audit as audit_pages
from server.web.routes import auth as auth_pages
from server.web.routes import contractors as contractor_pages
from server.web.routes import contracts as contract_pages
from server.web.routes import disputes as dispute_pages
from server.web.routes import documents as document_pages
from server.web.routes import fleet as fleet_pages
from server.web.routes import holds as hold_pages
from server.web.routes import logistics as logistics_pages
from server.web.routes import logistics_routes as route_pages
from server.web.routes import manual as manual_pages
from server.web.routes import notifications as notification_pages
from server.web.routes import operations as operation_pages
from server.web.routes import statements as statement_pages
from server.web.routes import tickets as ticket_pages

STATIC = Path(__file__).parents[1] / "web" / "static"


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    settings = settings or Settings()
    LOCAL_TZ.configure(settings.timezone)
    engine = engine or make_engine(settings.database_url)
    app = FastAPI(title="EPR collection tracker", version=__version__)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.state.auth = Auth(settings)
    app.include_router(health.router)
    # Every JSON route needs a signed-in caller, even one that forgets to ask for it;
    # roles and the contractor scope are then each route's own dependencies.
    signed_in = [Depends(current_user)]
    # 401 without a caller, 403 for a role, scope or CSRF refusal, 422 for bad input.
    answers = documented(401, 403, 422)
    # documents before statements: /statements/7.pdf is a document, not a month.
    for api in (
        me,
        accounts,
        documents,
        statements,
        contractors,
        contracts,
        tickets,
        fleet,
        disputes,
        logistics,
        routes,
    ):
        app.include_router(api.router, dependencies=signed_in, responses=answers)
    # Operations and the books: operators and auditors only (writes check OperatorDep).
    staff = [Depends(current_user), Depends(RequireRole(Role.OPERATOR, Role.AUDITOR))]
    for api in (operations, holds, audit):
        app.include_router(api.router, dependencies=staff, responses=answers)
    for pages in (
        auth_pages,
        contractor_pages,
        statement_pages,
        document_pages,
        hold_pages,
        dispute_pages,
        ticket_pages,
        manual_pages,
        fleet_pages,
        logistics_pages,
        operation_pages,
        account_pages,
        route_pages,
        notification_pages,
        contract_pages,
        audit_pages,
    ):
        app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyLimit, limits={manual_pages.PATH + "/": manual_pages.MAX_UPLOAD_BYTES})
    errors.install(app)
    return app
