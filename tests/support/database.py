"""What a database restart, or an administrator, does to its clients, for the tests of recovery."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text

from libs.db import Database
from libs.messaging.testing import wait_for


def end_backends(db: Database, pids: Sequence[int] | None = None) -> int:
    """End the server side of connections (``pg_terminate_backend``): the given backends, or every
    other one of this database. Returns how many once those backends have exited and closed their
    sockets: until then a client could still send a statement that the dying backend takes, and
    what follows would test a race instead of a lost connection."""
    with db.engine.connect() as conn:
        if pids is None:
            rows = conn.execute(
                text(
                    "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).all()
        else:
            rows = conn.execute(
                text("SELECT pid, pg_terminate_backend(pid) FROM unnest(CAST(:pids AS int[])) AS pid"),
                {"pids": list(pids)},
            ).all()
        ended = [pid for pid, terminated in rows if terminated]
        conn.commit()

        def exited() -> bool:
            alive = conn.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"), {"pids": ended}
            )
            conn.commit()  # a transaction sees one snapshot of pg_stat_activity: a new one each time
            return not alive

        wait_for(exited, "the ended backends to exit")
    return len(ended)
