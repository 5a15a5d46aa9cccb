"""wire integrity: per-device message order, pending acks, bounded dead letters,
fill reading hashes

Revision ID: 0530_wire
Revises: 0520_signed_config
Create Date: 2026-12-05

``device_seqs`` lets ingest refuse a replayed older status, health or alarm;
``pending_acks`` carries acks from processes without an MQTT connection (dead letters
re-processed by an operator) to the ingest workers; dead letters record the size and
SHA-256 of what arrived (an oversized payload keeps only its first bytes); fill
dedupe keys keep the reading's hash, so an ack can name it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0530_wire"
down_revision = "0520_signed_config"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_seqs",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "key", name=op.f("pk_device_seqs")),
    )
    op.create_table(
        "pending_acks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("topic", sa.String(length=256), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_acks")),
    )
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payload_size", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("payload_sha256", sa.String(length=64), nullable=True))
    with op.batch_alter_table("fill_seen", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fill_seen", schema=None) as batch_op:
        batch_op.drop_column("hash")
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_column("payload_sha256")
        batch_op.drop_column("payload_size")
    op.drop_table("pending_acks")
    op.drop_table("device_seqs")
