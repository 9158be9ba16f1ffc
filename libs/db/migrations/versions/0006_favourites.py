"""favourite headshots: the person's picks on the results page

Revision ID: 0006_favourites
Revises: 0005_ops
Create Date: 2026-11-29 12:10:00

Written by hand (render_as_batch-compatible): one column with a server default, nothing else changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_favourites"
down_revision: str | None = "0005_ops"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("headshots", schema=None) as batch_op:
        batch_op.add_column(sa.Column("favourite", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("headshots", schema=None) as batch_op:
        batch_op.drop_column("favourite")
