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

    held.begin_ahead()                  # after a round: the next one's BEGIN, sent now (PostgreSQL)
    held.end_quiet_transaction()        # while waiting: given back after QUIET_SECONDS unused

On PostgreSQL the next transaction's BEGIN is one more request on the path of every message; the
loop sends it ahead, while it waits for work (``begin_ahead``), and the next session or
connection block runs in that transaction: its statements and COMMIT are all that is left on the
path. A transaction with nothing in it yet holds no snapshot, no transaction id and no lock (READ
COMMITTED): it holds back neither vacuum nor ``CREATE INDEX CONCURRENTLY``
(tests/integration/test_bus_held.py). But it shows as "idle in transaction", its age counts
towards a long-transaction alert and ``idle_in_transaction_session_timeout``, and a pooler in
transaction mode keeps a server connection for it; so one left unused for QUIET_SECONDS is rolled
back (``end_quiet_transaction``, called from the loop's wait); the next message after a quiet
spell sends its own BEGIN. Nothing in a transaction here reads the server's
``now()``, which such a transaction would date from its BEGIN.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from psycopg.pq import ExecStatus, TransactionStatus
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from libs.db import Database, server_spoke
from libs.db.tenancy import scope_session

log = logging.getLogger("headshots.messaging.held")

# A transaction begun ahead and not used for this long is rolled back.
QUIET_SECONDS = 5.0


class HeldConnection:
    def __init__(self, db: Database, engine: Engine | None = None) -> None:
        self.db = db
        self.engine = engine or db.engine
        self._conn: Connection | None = None
        self._begun_ahead_at: float | None = None  # when begin_ahead() opened the transaction
        self._ahead = self.engine.dialect.name == "postgresql"

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
        if self._begun_ahead_at is not None:
            self._begun_ahead_at = None  # the transaction begun ahead is now in use: its COMMIT ends it
            if self._server_spoke():
                # While it waited, the server ended it (a restart, an idle-in-transaction timeout
                # shorter than QUIET_SECONDS): a new connection instead of a failed batch.
                log.info("the server ended the held connection while it waited; taking a new one")
                self.close()
        if self._conn is None:
            self._conn = self.engine.connect()
        return self._conn

    def _server_spoke(self) -> bool:
        assert self._conn is not None
        return server_spoke(self._conn.connection.dbapi_connection)

    def begin_ahead(self) -> None:
        """PostgreSQL: open the next transaction now (one BEGIN), off the path of the next
        message. Nothing on SQLite, without a held connection, or inside a transaction."""
        if not self._ahead or self._conn is None or self._conn.in_transaction():
            return
        if self._send(b"BEGIN", when=TransactionStatus.IDLE):
            self._begun_ahead_at = time.monotonic()

    def end_quiet_transaction(self, after: float = QUIET_SECONDS) -> None:
        """Roll back a transaction begun ahead that has not been used for ``after`` seconds."""
        begun = self._begun_ahead_at
        if begun is None or time.monotonic() - begun < after:
            return
        self._begun_ahead_at = None
        self._send(b"ROLLBACK", when=TransactionStatus.INTRANS)

    def _send(self, command: bytes, *, when: TransactionStatus) -> bool:
        # On libpq's connection itself: psycopg reads the transaction status from it, so the next
        # statement neither sends a BEGIN of its own (after BEGIN) nor assumes one (after
        # ROLLBACK). Only when the connection is in the status ``when`` (True: it was sent and
        # done); a failure gives the connection up.
        if self._conn is None:
            return False
        pgconn = self._conn.connection.dbapi_connection.pgconn  # type: ignore[union-attr]
        if pgconn.transaction_status != when:
            return False
        try:
            result = pgconn.exec_(command)
            ok = result.status == ExecStatus.COMMAND_OK
        except Exception as exc:  # the connection is gone: the next session opens another
            ok, reason = False, repr(exc)
        else:
            reason = (result.error_message or b"").decode(errors="replace").strip()
        if not ok:
            log.info("%s on the held connection failed (%s); taking a new one", command.decode(), reason)
            self.close()
        return ok

    def close(self) -> None:
        self._begun_ahead_at = None  # a transaction begun ahead ends with its connection
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
