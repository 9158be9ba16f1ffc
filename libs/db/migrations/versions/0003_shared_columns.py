"""columns several services share: webhook secret, preparation verdicts, headshot thumbnails and likeness

Revision ID: 0003_shared_columns
Revises: 0002_upload_attempts
Create Date: 2026-11-29 12:00:00

Written by hand (render_as_batch-compatible): nullable columns only, nothing else changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_shared_columns"
down_revision: str | None = "0002_upload_attempts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("webhook_secret", sa.String(length=128), nullable=True))
    with op.batch_alter_table("photos", schema=None) as batch_op:
        batch_op.add_column(sa.Column("training_key", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("quality_score", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("decision", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("decision_reason", sa.Text(), nullable=True))
    with op.batch_alter_table("headshots", schema=None) as batch_op:
        batch_op.add_column(sa.Column("thumb_key", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("likeness", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("headshots", schema=None) as batch_op:
        batch_op.drop_column("likeness")
        batch_op.drop_column("thumb_key")
    with op.batch_alter_table("photos", schema=None) as batch_op:
        batch_op.drop_column("decision_reason")
        batch_op.drop_column("decision")
        batch_op.drop_column("quality_score")
        batch_op.drop_column("training_key")
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_column("webhook_secret")
