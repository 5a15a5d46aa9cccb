"""Alembic environment: runs on the connection handed in by ``server.ledger.db.migrate``."""

from __future__ import annotations

from alembic import context

# Every module that declares tables, so autogenerate sees the whole schema.
from server.ledger import (  # noqa: F401
    accounting,
    accounts,
    alarms,
    devices,
    flags,
    manual,
    notifications,
    places,
    route_plans,
    telemetry,
    wire,
)
from server.ledger.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - always called through migrate()
    raise RuntimeError("run migrations with `epr-server migrate`, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
