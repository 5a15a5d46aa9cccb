"""device health history: each health report in short, for the device page

Revision ID: 0640_device_health
Revises: 0530_wire
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0640_device_health"
down_revision = "0630_routes_notify"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_health",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("measured_at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("outbox_depth", sa.BigInteger(), nullable=False),
        sa.Column("oldest_unacked_s", sa.BigInteger(), nullable=False),
        sa.Column("reconnects", sa.BigInteger(), nullable=False),
        sa.Column("serial_errors", sa.BigInteger(), nullable=False),
        sa.Column("uptime_s", sa.BigInteger(), nullable=False),
        sa.Column("disk_free_mb", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_health")),
    )
    op.create_index(
        "ix_device_health_device_measured",
        "device_health",
        ["device_id", "measured_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_device_health_device_measured", table_name="device_health")
    op.drop_table("device_health")
