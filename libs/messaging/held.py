"""One database connection held by a loop (the relay's rounds, the consumer's batches).

    held = HeldConnection(db)
    with held.session(org_id=message.org_id) as db_session:   # or all_orgs=True
        ...
        db_session.commit()
    with held.connection() as conn, conn.begin():             # Core statements, no ORM session
        conn.execute(...)

Taking a pooled connection for every round costs a round trip to the server (the pool's
pre-ping) on the path of every message; the loop keeps one instead. After an error the connection
is given up (it may be the database that failed) and the next session takes a fresh one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from libs.db import Database
from libs.db.tenancy import scope_session


class HeldConnection:
    def __init__(self, db: Database, engine: Engine | None = None) -> None:
        self.db = db
        self.engine = engine or db.engine
        self._conn: Connection | None = None

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """The held connection itself, for Core statements (the relay's rounds); given up after
        an error like a session's."""
        conn = self._open()
        try:
            yield conn
        except BaseException:
            self.close()
            raise

    @contextlib.contextmanager
    def session(self, org_id: str | None = None, *, all_orgs: bool = False) -> Iterator[Session]:
        """A session on the held connection, scoped like ``Database.session``; rolled back at the
        end unless committed."""
        if org_id is None and not all_orgs:
            raise ValueError("a session needs an org_id, or all_orgs=True for cross-org work")
        db_session = Session(bind=self._open(), expire_on_commit=False)
        if org_id is not None:
            scope_session(db_session, org_id)
        try:
            yield db_session
        except BaseException:
            self.close()
            raise
        finally:
            db_session.close()

    def _open(self) -> Connection:
        if self._conn is None:
            self._conn = self.engine.connect()
        return self._conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
