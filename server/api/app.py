"""``create_app(settings)``: builds engine, sessions and routers; nothing at import time."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import Engine

from server import __version__
from server.api.routes import audit, contracts, disputes, health, holds, statements
from server.config import Settings
from server.ledger.db import make_engine, session_factory


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    settings = settings or Settings()
    engine = engine or make_engine(settings.database_url)
    app = FastAPI(title="EPR collection tracker", version=__version__)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.include_router(health.router)
    app.include_router(statements.router)
    app.include_router(contracts.router)
    app.include_router(holds.router)
    app.include_router(disputes.router)
    app.include_router(audit.router)
    return app
