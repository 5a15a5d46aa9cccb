"""routes and notifications: stored route plans; the notification outbox, cursors,
subscriptions, recorded addresses and deliveries

Revision ID: 0630
Revises: 0530_wire
Create Date: 2026-12-05

* ``route_plans``: a plan as computed (canonical JSON of its routes, stops in order,
  vehicles and unserved stops), for the driver's list and the map.
* ``notification_events``: the outbox, once per ``(source, source_id)``;
  ``notification_cursors``: how far the collector has read holds, statements and
  alarms, and the ``events`` row event writers lock so ids commit in order.
* ``notification_subscriptions`` (account, event kind, Apprise URL, optional region
  and contractor filter, the cursor of what was told and the backoff state),
  ``notification_addresses`` (the e-mail an operator recorded for an account) and
  ``notification_deliveries`` (each message sent or attempt failed).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0630_routes_notify"
down_revision = "0620_places"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "route_plans",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("plan_date", sa.Date(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("contractor_bin", sa.String(length=12), nullable=True),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("total_m", sa.BigInteger(), nullable=False),
        sa.Column("stops", sa.Integer(), nullable=False),
        sa.Column("unserved", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_route_plans")),
    )
    op.create_index(op.f("ix_route_plans_plan_date"), "route_plans", ["plan_date"])
    op.create_index(op.f("ix_route_plans_contractor_bin"), "route_plans", ["contractor_bin"])
    op.create_table(
        "notification_events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("contractor_bin", sa.String(length=12), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("queued_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_events")),
        sa.UniqueConstraint("source", "source_id", name="uq_notification_events_source"),
    )
    op.create_index("ix_notification_events_kind_id", "notification_events", ["kind", "id"])
    cursors = op.create_table(
        "notification_cursors",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_notification_cursors")),
    )
    # The row every event writer locks first (server/notifications/events.py).
    op.bulk_insert(cursors, [{"source": "events", "last_id": 0}])
    op.create_table(
        "notification_subscriptions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column("event_kind", sa.String(length=32), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("contractor_bin", sa.String(length=12), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(), nullable=True),
        sa.Column("sent_through", sa.BigInteger(), nullable=False),
        sa.Column("last_sent_at", sa.DateTime(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notification_subscriptions_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_subscriptions")),
    )
    op.create_index(
        op.f("ix_notification_subscriptions_user_id"), "notification_subscriptions", ["user_id"]
    )
    op.create_table(
        "notification_addresses",
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("recorded_by", sa.String(length=100), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notification_addresses_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_notification_addresses")),
    )
    op.create_table(
        "notification_deliveries",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.BigInteger(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("first_event_id", sa.BigInteger(), nullable=False),
        sa.Column("last_event_id", sa.BigInteger(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["notification_subscriptions.id"],
            name=op.f("fk_notification_deliveries_subscription_id_notification_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_deliveries")),
    )
    op.create_index(
        op.f("ix_notification_deliveries_subscription_id"),
        "notification_deliveries",
        ["subscription_id"],
    )


def downgrade() -> None:
    op.drop_table("notification_deliveries")
    op.drop_table("notification_addresses")
    op.drop_table("notification_subscriptions")
    op.drop_table("notification_cursors")
    op.drop_index("ix_notification_events_kind_id", table_name="notification_events")
    op.drop_table("notification_events")
    op.drop_table("route_plans")
