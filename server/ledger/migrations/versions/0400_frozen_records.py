"""approved statements frozen and the audit log append-only, in the database

Revision ID: 0400
Revises: 0100, 0200
Create Date: 2026-11-29

The code never edits an approved statement or an audit entry, and ``statements verify``
/ ``audit verify`` find any edit after the fact; these triggers also refuse one at the
door, so a mistaken script or a console session cannot make the edit in the first
place. Only a database owner who drops the triggers can, and verification still
catches that.
"""

from __future__ import annotations

from alembic import op

revision = "0400"
down_revision = ("0100", "0200")
branch_labels = None
depends_on = None

#: Columns of ``statements`` fixed once a statement is approved (payment fields may
#: still be set once, by marking it paid).
FROZEN = (
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
PAID = ("status", "paid_at", "paid_by", "payment_ref")
FROZEN_MESSAGE = "an approved statement is frozen: record an adjusting statement instead"
AUDIT_MESSAGE = "audit_log is append-only"


def _changed(columns: tuple[str, ...], differ: str) -> str:
    return " OR ".join(f"NEW.{c} {differ} OLD.{c}" for c in columns)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION statements_frozen() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            "BEGIN\n"
            "  IF OLD.status IN ('approved', 'paid') AND (TG_OP = 'DELETE'"
            f" OR {_changed(FROZEN, 'IS DISTINCT FROM')}"
            f" OR (OLD.status = 'paid' AND ({_changed(PAID, 'IS DISTINCT FROM')}))"
            " OR (OLD.status = 'approved' AND NEW.status NOT IN ('approved', 'paid'))) THEN\n"
            f"    RAISE EXCEPTION '{FROZEN_MESSAGE}' USING ERRCODE = 'restrict_violation';\n"
            "  END IF;\n"
            "  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;\n"
            "  RETURN NEW;\n"
            "END $$"
        )
        op.execute(
            "CREATE TRIGGER statements_frozen BEFORE UPDATE OR DELETE ON statements"
            " FOR EACH ROW EXECUTE FUNCTION statements_frozen()"
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log"
            " FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log"
            " FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
        )
        return
    op.execute(
        "CREATE TRIGGER statements_frozen_update BEFORE UPDATE ON statements"
        " WHEN OLD.status IN ('approved', 'paid') AND ("
        f"{_changed(FROZEN, 'IS NOT')}"
        f" OR (OLD.status = 'paid' AND ({_changed(PAID, 'IS NOT')}))"
        " OR (OLD.status = 'approved' AND NEW.status NOT IN ('approved', 'paid')))"
        f" BEGIN SELECT RAISE(ABORT, '{FROZEN_MESSAGE}'); END"
    )
    op.execute(
        "CREATE TRIGGER statements_frozen_delete BEFORE DELETE ON statements"
        " WHEN OLD.status IN ('approved', 'paid')"
        f" BEGIN SELECT RAISE(ABORT, '{FROZEN_MESSAGE}'); END"
    )
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER audit_log_no_{action.lower()} BEFORE {action} ON audit_log"
            f" BEGIN SELECT RAISE(ABORT, '{AUDIT_MESSAGE}'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
        op.execute("DROP TRIGGER statements_frozen ON statements")
        op.execute("DROP FUNCTION statements_frozen()")
        return
    for name in (
        "audit_log_no_update",
        "audit_log_no_delete",
        "statements_frozen_update",
        "statements_frozen_delete",
    ):
        op.execute(f"DROP TRIGGER {name}")
