"""ingest ledger: flags, reversals, alarms, telemetry spool, rollups, device history;
append-only triggers on tickets and reversals

Revision ID: 0100
Revises: 0001
Create Date: 2026-11-29

The triggers make the database itself refuse UPDATE and DELETE on tickets (and on
reversing entries), whoever connects. A later migration that rebuilds ``tickets`` on
SQLite (batch mode copies the table) must create them again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server.ledger.migrations import append_only

revision = "0100"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alarms",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("subject_kind", sa.String(length=16), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.Column("site_id", sa.String(length=64), nullable=True),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("raised_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=100), nullable=True),
        sa.Column("cleared_at", sa.DateTime(), nullable=True),
        sa.Column("cleared_by", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarms")),
    )
    with op.batch_alter_table("alarms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alarms_device_id"), ["device_id"], unique=False)
        batch_op.create_index("ix_alarms_state_raised", ["state", "raised_at"], unique=False)
        batch_op.create_index(
            "uq_alarms_active",
            ["code", "subject"],
            unique=True,
            sqlite_where=sa.text("state != 'cleared'"),
            postgresql_where=sa.text("state != 'cleared'"),
        )

    op.create_table(
        "device_config",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("desired_revision", sa.Integer(), nullable=True),
        sa.Column("desired_settings", sa.Text(), nullable=True),
        sa.Column("desired_at", sa.DateTime(), nullable=True),
        sa.Column("desired_by", sa.String(length=100), nullable=True),
        sa.Column("reported_revision", sa.Integer(), nullable=True),
        sa.Column("reported_applied", sa.Boolean(), nullable=True),
        sa.Column("reported_reason", sa.Text(), nullable=True),
        sa.Column("reported_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_device_config")),
    )
    op.create_table(
        "device_history",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("by", sa.String(length=100), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_history")),
    )
    with op.batch_alter_table("device_history", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_device_history_device_id"), ["device_id"], unique=False
        )

    op.create_table(
        "fill_rollups",
        sa.Column("container_id", sa.String(length=64), nullable=False),
        sa.Column("hour", sa.DateTime(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("sum_centi", sa.BigInteger(), nullable=False),
        sa.Column("min_centi", sa.Integer(), nullable=False),
        sa.Column("max_centi", sa.Integer(), nullable=False),
        sa.Column("last_centi", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("container_id", "hour", name=op.f("pk_fill_rollups")),
    )
    with op.batch_alter_table("fill_rollups", schema=None) as batch_op:
        batch_op.create_index("ix_fill_rollups_hour", ["hour"], unique=False)

    op.create_table(
        "fill_seen",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "seq", name=op.f("pk_fill_seen")),
    )
    with op.batch_alter_table("fill_seen", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fill_seen_received_at"), ["received_at"], unique=False)

    op.create_table(
        "telemetry_spool",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry_spool")),
    )
    with op.batch_alter_table("telemetry_spool", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_telemetry_spool_next_attempt_at"), ["next_attempt_at"], unique=False
        )

    op.create_table(
        "ticket_flags",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("raised_at", sa.DateTime(), nullable=False),
        sa.Column("cleared_at", sa.DateTime(), nullable=True),
        sa.Column("cleared_by", sa.String(length=100), nullable=True),
        sa.Column("clear_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_flags_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_flags")),
    )
    with op.batch_alter_table("ticket_flags", schema=None) as batch_op:
        batch_op.create_index("ix_ticket_flags_open", ["ticket_id", "cleared_at"], unique=False)

    op.create_table(
        "ticket_reversals",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reversed_by", sa.String(length=100), nullable=False),
        sa.Column("reversed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_reversals_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_reversals")),
        sa.UniqueConstraint("ticket_id", name=op.f("uq_ticket_reversals_ticket_id")),
    )
    with op.batch_alter_table("device_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("health_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("outbox_depth", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("clock_offset_ms", sa.BigInteger(), nullable=True))

    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("approved_by", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("revoked_by", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("revoke_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("mqtt_password_hash", sa.String(length=200), nullable=True))

    _append_only_up()


APPEND_ONLY = ("tickets", "ticket_reversals")


def _append_only_up() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            "BEGIN\n"
            "  RAISE EXCEPTION '% is append-only: record a reversing entry instead',"
            " TG_TABLE_NAME USING ERRCODE = 'restrict_violation';\n"
            "END $$"
        )
    append_only.protect(APPEND_ONLY)


def _append_only_down() -> None:
    append_only.release(APPEND_ONLY)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION ledger_refuse_change()")


def downgrade() -> None:
    _append_only_down()
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("mqtt_password_hash")
        batch_op.drop_column("revoke_reason")
        batch_op.drop_column("revoked_by")
        batch_op.drop_column("approved_by")

    with op.batch_alter_table("device_state", schema=None) as batch_op:
        batch_op.drop_column("clock_offset_ms")
        batch_op.drop_column("outbox_depth")
        batch_op.drop_column("health_at")

    op.drop_table("ticket_reversals")
    with op.batch_alter_table("ticket_flags", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_flags_open")

    op.drop_table("ticket_flags")
    with op.batch_alter_table("telemetry_spool", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_telemetry_spool_next_attempt_at"))

    op.drop_table("telemetry_spool")
    with op.batch_alter_table("fill_seen", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fill_seen_received_at"))

    op.drop_table("fill_seen")
    with op.batch_alter_table("fill_rollups", schema=None) as batch_op:
        batch_op.drop_index("ix_fill_rollups_hour")

    op.drop_table("fill_rollups")
    with op.batch_alter_table("device_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_history_device_id"))

    op.drop_table("device_history")
    op.drop_table("device_config")
    with op.batch_alter_table("alarms", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_alarms_active",
            sqlite_where=sa.text("state != 'cleared'"),
            postgresql_where=sa.text("state != 'cleared'"),
        )
        batch_op.drop_index("ix_alarms_state_raised")
        batch_op.drop_index(batch_op.f("ix_alarms_device_id"))

    op.drop_table("alarms")
