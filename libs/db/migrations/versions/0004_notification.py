"""notification: the ledger of e-mails sent per event, webhook deliveries and their attempts

Revision ID: 0004_notification
Revises: 0003_shared_columns
Create Date: 2026-11-29 12:30:00

Written by hand (render_as_batch-compatible): three new tables, nothing else changes.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004_notification"
down_revision: str | None = "0003_shared_columns"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column[Any]:
    return sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
    )


def _org(table: str) -> list[Any]:
    return [
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f(f"fk_{table}_org_id_organizations")
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "email_sends",
        _id(),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("template", sa.String(length=40), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=True),
        sa.Column("user_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        *_org("email_sends"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_sends")),
        sa.UniqueConstraint("message_id", "template", name=op.f("uq_email_sends_message_id")),
    )
    with op.batch_alter_table("email_sends", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_email_sends_org_id"), ["org_id"], unique=False)
        batch_op.create_index("ix_email_sends_status", ["status", "updated_at"], unique=False)

    op.create_table(
        "webhook_deliveries",
        _id(),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("event", sa.String(length=100), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        *_org("webhook_deliveries"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("org_id", "message_id", name=op.f("uq_webhook_deliveries_org_id")),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_deliveries_org_id"), ["org_id"], unique=False)
        batch_op.create_index("ix_webhook_deliveries_due", ["status", "next_attempt_at"], unique=False)

    op.create_table(
        "webhook_attempts",
        _id(),
        sa.Column("delivery_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("response_excerpt", sa.Text(), nullable=True),
        *_org("webhook_attempts"),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_webhook_attempts_delivery_id_webhook_deliveries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_attempts_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_webhook_attempts_delivery_id"), ["delivery_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_attempts_delivery_id"))
        batch_op.drop_index(batch_op.f("ix_webhook_attempts_org_id"))
    op.drop_table("webhook_attempts")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_due")
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_org_id"))
    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("email_sends", schema=None) as batch_op:
        batch_op.drop_index("ix_email_sends_status")
        batch_op.drop_index(batch_op.f("ix_email_sends_org_id"))
    op.drop_table("email_sends")
