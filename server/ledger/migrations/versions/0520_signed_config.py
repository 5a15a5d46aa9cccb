"""signed remote configuration: the revisions the server signed, a ticket's revision

Revision ID: 0520_signed_config
Revises: 0500_four_eyes
Create Date: 2026-12-05

``device_config_revisions`` keeps every desired configuration as the server signed
it (settings, signature, key, who issued it); ``tickets.config_revision`` is the
revision a device names in a weighing (a signed, optional field). Adding a nullable
column does not rebuild ``tickets``, so its append-only triggers stay as they are.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0520_signed_config"
down_revision = "0500_four_eyes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_config_revisions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.Column("issued_by", sa.String(length=100), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("sig", sa.String(length=88), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("published_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_config_revisions")),
        sa.UniqueConstraint("device_id", "revision", name="uq_device_config_revisions"),
    )
    op.add_column("tickets", sa.Column("config_revision", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("tickets", "config_revision")
    op.drop_table("device_config_revisions")
