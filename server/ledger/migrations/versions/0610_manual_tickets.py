"""manual tickets: who entered a weighbridge export's row or a paper ticket, from
what, and the scans attached; both tables append-only

Revision ID: 0610_manual_tickets
Revises: 0530_wire
Create Date: 2026-12-05

The tickets themselves go into ``tickets`` under ``device_id = 'manual:<site>'``
(``server/ledger/manual.py``), so ``tickets`` is not rebuilt and keeps its triggers.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server.ledger.migrations import append_only

revision = "0610_manual_tickets"
down_revision = "0600_bank_documents"
branch_labels = None
depends_on = None

APPEND_ONLY = ("manual_attachments", "manual_tickets")


def upgrade() -> None:
    op.create_table(
        "manual_attachments",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("media_type", sa.String(length=32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("stored_by", sa.String(length=100), nullable=False),
        sa.Column("stored_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_manual_attachments")),
    )
    op.create_table(
        "manual_tickets",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("ticket_id", sa.BigInteger(), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("ticket_no", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("source_name", sa.String(length=300), nullable=False),
        sa.Column("source_line", sa.Integer(), nullable=True),
        sa.Column("attachment_sha256", sa.String(length=64), nullable=True),
        sa.Column("vehicle_plate", sa.String(length=32), nullable=True),
        sa.Column("contractor_bin", sa.String(length=12), nullable=True),
        sa.Column("entered_by", sa.String(length=100), nullable=False),
        sa.Column("entered_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_manual_tickets_ticket_id_tickets")
        ),
        sa.ForeignKeyConstraint(
            ["attachment_sha256"],
            ["manual_attachments.sha256"],
            name=op.f("fk_manual_tickets_attachment_sha256_manual_attachments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manual_tickets")),
        sa.UniqueConstraint("site_id", "ticket_no", name="uq_manual_tickets_site_ticket"),
        sa.UniqueConstraint("ticket_id", name=op.f("uq_manual_tickets_ticket_id")),
    )
    append_only.protect(APPEND_ONLY)


def downgrade() -> None:
    append_only.release(APPEND_ONLY)
    op.drop_table("manual_tickets")
    op.drop_table("manual_attachments")
