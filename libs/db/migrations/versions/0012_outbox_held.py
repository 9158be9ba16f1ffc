"""outbox_held: rows the writing process's own relay publishes, without taking them first

Revision ID: 0012_outbox_held
Revises: 0011_outbox_path
Create Date: 2026-12-01 07:00:00

- ``held_by`` / ``held_until``: a row written in a process whose relay runs is held by that relay
  (its id) until a lease ends; the relay is handed the row in memory after the commit and
  publishes it at once, with no UPDATE to take it first. Other relays leave a held row alone until
  its lease has ended (the writing process died before publishing it), then take it as any other.
- PostgreSQL: the NOTIFY trigger becomes a row trigger that fires only for rows nobody holds, so
  the other processes' relays are not woken for rows they would not take. PostgreSQL still sends
  one notification per transaction (identical ones are folded together).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_outbox_held"
down_revision: str | None = "0011_outbox_path"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("held_by", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("held_until", sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox "
        "FOR EACH ROW WHEN (NEW.held_by IS NULL) EXECUTE FUNCTION outbox_notify()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
        op.execute(
            "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox "
            "FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()"
        )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("held_until")
        batch_op.drop_column("held_by")
