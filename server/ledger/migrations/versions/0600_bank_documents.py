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

revision = "0600_bank_documents"
down_revision = "0530_wire"
branch_labels = None
depends_on = None

MESSAGE = "bank_accounts is append-only: record a reversing entry instead"


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
    if op.get_bind().dialect.name == "postgresql":
        # ledger_refuse_change() is 0100's: it names the table and refuses the change.
        op.execute(
            "CREATE TRIGGER bank_accounts_append_only BEFORE UPDATE OR DELETE ON bank_accounts"
            " FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
        )
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER bank_accounts_no_{action.lower()} BEFORE {action} ON bank_accounts"
            f" BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER bank_accounts_append_only ON bank_accounts")
    else:
        op.execute("DROP TRIGGER bank_accounts_no_update")
        op.execute("DROP TRIGGER bank_accounts_no_delete")
    op.drop_index(op.f("ix_bank_accounts_contractor_bin"), table_name="bank_accounts")
    op.drop_table("bank_accounts")
