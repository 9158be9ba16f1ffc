"""privacy: deletion receipts, and the claim row of cluster-wide periodic jobs

Revision ID: 0009_privacy
Revises: 0008_preprocess
Create Date: 2026-11-29 13:30:00

Written by hand (render_as_batch-compatible): two new tables, nothing else changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_privacy"
down_revision: str | None = "0008_preprocess"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deletion_receipts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=True),
        sa.Column("user_id", sa.String(length=36), nullable=True),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=36), nullable=False),
        sa.Column("kinds", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_deletion_receipts_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deletion_receipts")),
    )
    with op.batch_alter_table("deletion_receipts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deletion_receipts_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_deletion_receipts_session_id"), ["session_id"], unique=False)
        batch_op.create_index("ix_deletion_receipts_user", ["user_id", "created_at"], unique=False)
    op.create_table(
        "job_runs",
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("ran_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_job_runs")),
    )


def downgrade() -> None:
    op.drop_table("job_runs")
    with op.batch_alter_table("deletion_receipts", schema=None) as batch_op:
        batch_op.drop_index("ix_deletion_receipts_user")
        batch_op.drop_index(batch_op.f("ix_deletion_receipts_session_id"))
        batch_op.drop_index(batch_op.f("ix_deletion_receipts_org_id"))
    op.drop_table("deletion_receipts")
