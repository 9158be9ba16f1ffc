"""ops: worker heartbeats, queue depth samples, stuck-session checks

Revision ID: 0005_ops
Revises: 0004_notification
Create Date: 2026-11-29 12:10:00

Written by hand (render_as_batch-compatible): three new tables, nothing else changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_ops"
down_revision: str | None = "0004_notification"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("handled", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("current_session_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_heartbeats")),
    )
    op.create_table(
        "queue_samples",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("sampled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queue", sa.String(length=200), nullable=False),
        sa.Column("ready", sa.Integer(), nullable=False),
        sa.Column("unacked", sa.Integer(), nullable=True),
        sa.Column("consumers", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_samples")),
    )
    op.create_index("ix_queue_samples_time", "queue_samples", ["sampled_at"], unique=False)
    op.create_table(
        "stuck_checks",
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("requeued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("flagged_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_stuck_checks")),
    )
    op.create_index(op.f("ix_stuck_checks_org_id"), "stuck_checks", ["org_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_stuck_checks_org_id"), table_name="stuck_checks")
    op.drop_table("stuck_checks")
    op.drop_index("ix_queue_samples_time", table_name="queue_samples")
    op.drop_table("queue_samples")
    op.drop_table("worker_heartbeats")
