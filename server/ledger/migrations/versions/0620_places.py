"""places: coordinates, capacity, category and contractor of reception points and
containers

Revision ID: 0620_places
Revises: 0530_wire
Create Date: 2026-12-05

One row per reception point (keyed by site id) and per container (keyed by the
container id its level sensor reports), for the map, the forecasts, the due list and
the mass balance (server/logistics/).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0620_places"
down_revision = "0610_manual_tickets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "places",
        sa.Column("place_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("capacity_l", sa.Integer(), nullable=True),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("contractor_bin", sa.String(length=12), nullable=True),
        sa.Column("site_id", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("place_id", name=op.f("pk_places")),
    )
    with op.batch_alter_table("places", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_places_region"), ["region"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_places_contractor_bin"), ["contractor_bin"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_places_site_id"), ["site_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("places", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_places_site_id"))
        batch_op.drop_index(batch_op.f("ix_places_contractor_bin"))
        batch_op.drop_index(batch_op.f("ix_places_region"))
    op.drop_table("places")
