"""outbox_path: the outbox's NOTIFY sent by the table itself, and an index of the unsent rows only

Revision ID: 0011_outbox_path
Revises: 0010_attempts
Create Date: 2026-11-29 18:30:00

- PostgreSQL: every statement that inserts outbox rows notifies channel ``headshots_outbox``
  (libs.db OUTBOX_CHANNEL); PostgreSQL delivers it when the transaction commits, once per
  transaction. Until now the writer sent it with a separate ``SELECT pg_notify(...)``: one round
  trip per transaction on the path of every event. SQLite has no NOTIFY (the embedded relay is
  woken in process).
- ``ix_outbox_unsent`` becomes a partial index on ``id WHERE sent_at IS NULL``: the relay's
  ``... WHERE sent_at IS NULL ORDER BY id LIMIT n`` walks it in order and stops after n rows.
  The old (sent_at, id) index let the planner read and sort every unsent row's body each round.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_outbox_path"
down_revision: str | None = "0010_attempts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNSENT = sa.text("sent_at IS NULL")


def upgrade() -> None:
    op.drop_index("ix_outbox_unsent", table_name="outbox")
    op.create_index("ix_outbox_unsent", "outbox", ["id"], postgresql_where=UNSENT, sqlite_where=UNSENT)
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('headshots_outbox', '');
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox "
        "FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
        op.execute("DROP FUNCTION IF EXISTS outbox_notify()")
    op.drop_index("ix_outbox_unsent", table_name="outbox")
    op.create_index("ix_outbox_unsent", "outbox", ["sent_at", "id"])
