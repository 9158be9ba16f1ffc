"""org admin console: review decisions on sessions, org API keys

Revision ID: 0007_review
Revises: 0006_favourites
Create Date: 2026-11-29 12:00:00

Written by hand (render_as_batch-compatible): three nullable columns and one new table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_review"
down_revision: str | None = "0006_favourites"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("headshot_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("review_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("reviewed_by", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "org_api_keys",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_org_api_keys_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_org_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_org_api_keys_key_hash")),
    )
    with op.batch_alter_table("org_api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_org_api_keys_org_id"), ["org_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("org_api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_org_api_keys_org_id"))
    op.drop_table("org_api_keys")
    with op.batch_alter_table("headshot_sessions", schema=None) as batch_op:
        batch_op.drop_column("reviewed_at")
        batch_op.drop_column("reviewed_by")
        batch_op.drop_column("review_reason")
