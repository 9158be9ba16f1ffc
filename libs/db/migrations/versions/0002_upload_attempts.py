"""upload attempts, for intake's per-person upload rate limit

Revision ID: 0002_upload_attempts
Revises: 0001
Create Date: 2026-11-24 04:00:00

Written by hand (render_as_batch-compatible): one new table, nothing else changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_upload_attempts"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "upload_attempts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_upload_attempts_org_id_organizations")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_upload_attempts_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upload_attempts")),
    )
    with op.batch_alter_table("upload_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_upload_attempts_org_id"), ["org_id"], unique=False)
        batch_op.create_index("ix_upload_attempts_user_time", ["user_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("upload_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_upload_attempts_user_time")
        batch_op.drop_index(batch_op.f("ix_upload_attempts_org_id"))
    op.drop_table("upload_attempts")
