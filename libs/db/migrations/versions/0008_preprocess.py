"""photo preparation's measures: photos.preparation (scores and perceptual hash, or the problem)

Revision ID: 0008_preprocess
Revises: 0007_review
Create Date: 2026-11-29 12:00:00

Written by hand (render_as_batch-compatible): one nullable column, nothing else changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_preprocess"
down_revision: str | None = "0007_review"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("photos", schema=None) as batch_op:
        batch_op.add_column(sa.Column("preparation", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("photos", schema=None) as batch_op:
        batch_op.drop_column("preparation")
