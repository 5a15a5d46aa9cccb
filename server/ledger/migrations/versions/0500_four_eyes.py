"""four eyes on payments: account permissions, and who computed, approved and paid

Revision ID: 0500_four_eyes
Revises: 0400 (and needs 0300, the accounts)
Create Date: 2026-12-05

* ``account_permissions``: the permissions an operator account holds
  (``statements.compute``, ``statements.approve``, ``statements.pay``,
  ``accounts.admin``); revoking sets ``revoked_at``, a new grant is a new row.
* ``statements.computed_by`` / ``computed_by_id``, ``approved_by_id``, ``paid_by_id``:
  the accounts behind each step, so the library can refuse an approval by the account
  that computed the draft and a payment by the account that approved it. Statements
  stored before this migration have no ``computed_by_id``.
* The frozen-statement triggers of ``0400`` are remade so the new columns are frozen
  with the others at approval (``paid_by_id`` may still be set once, when paid).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0500_four_eyes"
down_revision = "0400"
branch_labels = None
depends_on = "0300"

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: As in 0400, and the account columns this migration adds.
FROZEN_0400 = (
    "run_id",
    "contractor_bin",
    "period",
    "kind",
    "adjusts_id",
    "body",
    "sha256",
    "total_kzt",
    "computed_at",
    "approved_at",
    "approved_by",
    "evidence_sha256",
)
PAID_0400 = ("status", "paid_at", "paid_by", "payment_ref")
FROZEN = (*FROZEN_0400, "computed_by", "computed_by_id", "approved_by_id")
PAID = (*PAID_0400, "paid_by_id")
FROZEN_MESSAGE = "an approved statement is frozen: record an adjusting statement instead"


def _changed(columns: tuple[str, ...], differ: str) -> str:
    return " OR ".join(f"NEW.{c} {differ} OLD.{c}" for c in columns)


def _frozen_triggers(frozen: tuple[str, ...], paid: tuple[str, ...]) -> None:
    """(Re)make the update trigger of 0400 over these columns."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION statements_frozen() RETURNS trigger"
            " LANGUAGE plpgsql AS $$\n"
            "BEGIN\n"
            "  IF OLD.status IN ('approved', 'paid') AND (TG_OP = 'DELETE'"
            f" OR {_changed(frozen, 'IS DISTINCT FROM')}"
            f" OR (OLD.status = 'paid' AND ({_changed(paid, 'IS DISTINCT FROM')}))"
            " OR (OLD.status = 'approved' AND NEW.status NOT IN ('approved', 'paid'))) THEN\n"
            f"    RAISE EXCEPTION '{FROZEN_MESSAGE}' USING ERRCODE = 'restrict_violation';\n"
            "  END IF;\n"
            "  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;\n"
            "  RETURN NEW;\n"
            "END $$"
        )
        return
    op.execute("DROP TRIGGER IF EXISTS statements_frozen_update")
    op.execute(
        "CREATE TRIGGER statements_frozen_update BEFORE UPDATE ON statements"
        " WHEN OLD.status IN ('approved', 'paid') AND ("
        f"{_changed(frozen, 'IS NOT')}"
        f" OR (OLD.status = 'paid' AND ({_changed(paid, 'IS NOT')}))"
        " OR (OLD.status = 'approved' AND NEW.status NOT IN ('approved', 'paid')))"
        f" BEGIN SELECT RAISE(ABORT, '{FROZEN_MESSAGE}'); END"
    )


def upgrade() -> None:
    op.create_table(
        "account_permissions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column("permission", sa.String(length=32), nullable=False),
        sa.Column("granted_at", sa.DateTime(), nullable=False),
        sa.Column("granted_by", sa.String(length=100), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_account_permissions_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_permissions")),
    )
    op.create_index(
        op.f("ix_account_permissions_user_id"), "account_permissions", ["user_id"], unique=False
    )
    # Plain ADD COLUMN (no batch copy of the table, which would drop its triggers).
    op.add_column("statements", sa.Column("computed_by", sa.String(length=100), nullable=True))
    for column in ("computed_by_id", "approved_by_id", "paid_by_id"):
        if op.get_bind().dialect.name == "sqlite":
            # SQLite takes a reference in ADD COLUMN, not as a separate constraint.
            op.execute(f"ALTER TABLE statements ADD COLUMN {column} BIGINT REFERENCES users (id)")
        else:
            op.add_column(
                "statements",
                sa.Column(column, sa.BigInteger(), sa.ForeignKey("users.id"), nullable=True),
            )
    _frozen_triggers(FROZEN, PAID)


def downgrade() -> None:
    _frozen_triggers(FROZEN_0400, PAID_0400)
    if op.get_bind().dialect.name == "postgresql":
        for column in ("paid_by_id", "approved_by_id", "computed_by_id", "computed_by"):
            op.drop_column("statements", column)
    else:
        # SQLite drops a column that a foreign key names only by copying the table,
        # which drops its triggers too: make them again afterwards.
        with op.batch_alter_table("statements") as batch_op:
            for column in ("paid_by_id", "approved_by_id", "computed_by_id", "computed_by"):
                batch_op.drop_column(column)
        _frozen_triggers(FROZEN_0400, PAID_0400)
        op.execute(
            "CREATE TRIGGER IF NOT EXISTS statements_frozen_delete BEFORE DELETE ON statements"
            " WHEN OLD.status IN ('approved', 'paid')"
            f" BEGIN SELECT RAISE(ABORT, '{FROZEN_MESSAGE}'); END"
        )
    op.drop_index(op.f("ix_account_permissions_user_id"), table_name="account_permissions")
    op.drop_table("account_permissions")
