"""contractors' bank accounts for the payment register

Revision ID: 0600
Revises: 0530_wire
Create Date: 2026-12-05

``bank_accounts`` keeps each contractor's IBAN, BIC and bank name, one row per change
(the newest row of a BIN is its account), so the payment register can name where each
statement is paid and the audit log can show every change. The table is append-only in
the database too: a changed account is a new row, an old one is never edited away.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server.ledger.migrations import append_only

revision = "0600_bank_documents"
down_revision = "0530_wire"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bank_accounts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("contractor_bin", sa.String(length=12), nullable=False),
        sa.Column("iban", sa.String(length=34), nullable=False),
        sa.Column("bic", sa.String(length=11), nullable=False),
        sa.Column("bank_name", sa.String(length=200), nullable=False),
        sa.Column("set_by", sa.String(length=100), nullable=False),
        sa.Column("set_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_accounts")),
    )
    op.create_index(
        op.f("ix_bank_accounts_contractor_bin"), "bank_accounts", ["contractor_bin"], unique=False
    )
    # Refuses TRUNCATE on PostgreSQL too, as every other append-only table does.
    append_only.protect(["bank_accounts"])


def downgrade() -> None:
    append_only.release(["bank_accounts"])
    op.drop_index(op.f("ix_bank_accounts_contractor_bin"), table_name="bank_accounts")
    op.drop_table("bank_accounts")
