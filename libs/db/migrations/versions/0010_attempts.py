"""attempts: every try at an e-mail (latency, the server's reply), numbered webhook attempts, and
the subject of each e-mail send

Revision ID: 0010_attempts
Revises: 0009_privacy
Create Date: 2026-11-29 15:00:00

Written by hand (render_as_batch-compatible). Webhook attempts recorded before this revision get
their number from their order within their delivery.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_attempts"
down_revision: str | None = "0009_privacy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "email_attempts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("send_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(length=12), nullable=False),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_email_attempts_org_id_organizations")
        ),
        sa.ForeignKeyConstraint(
            ["send_id"], ["email_sends.id"], name=op.f("fk_email_attempts_send_id_email_sends")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_attempts")),
    )
    with op.batch_alter_table("email_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_email_attempts_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_email_attempts_send_id"), ["send_id"], unique=False)
    with op.batch_alter_table("email_sends", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subject", sa.String(length=200), nullable=True))
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempt", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE webhook_attempts SET attempt = (SELECT count(*) FROM webhook_attempts AS earlier "
        "WHERE earlier.delivery_id = webhook_attempts.delivery_id AND earlier.id <= webhook_attempts.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.drop_column("attempt")
    with op.batch_alter_table("email_sends", schema=None) as batch_op:
        batch_op.drop_column("subject")
    with op.batch_alter_table("email_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_attempts_send_id"))
        batch_op.drop_index(batch_op.f("ix_email_attempts_org_id"))
    op.drop_table("email_attempts")
