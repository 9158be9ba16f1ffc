"""A Core statement compiled once and run on the driver's own cursor, in an SQLAlchemy transaction.

    take = DirectStatement(_TAKE, engine.dialect)            # compiled here, once
    with held.connection() as conn, conn.begin():
        rows = take.execute(conn, {"limit": 100, "now": utcnow()}).fetchall()   # plain tuples

For the few statements on the path of every message (the relay's round, the consumer's claim).
SQLAlchemy's execution of a Core statement computes the statement's cache key, sets up an
execution context and wraps the result, every time: for the relay's UPDATE over a CTE that cost
more than the statement's own round trip (PostgreSQL: 447 against 286 µs of CPU for the round,
0.74 against 0.49 ms, docs/messaging.md). Here the SQL is compiled once from the same Core
statement and handed to the DBAPI cursor of the connection's transaction: the statement is still
written once, in Core, and the transaction is still SQLAlchemy's.

What SQLAlchemy's execution would add and this keeps: ``before_cursor_execute`` and
``after_cursor_execute`` listeners are called (instrumentation, the bus benchmark's count of round
trips), and a driver error is raised as SQLAlchemy's own (``OperationalError``,
``IntegrityError``...), with the connection invalidated when the database is gone (or says it is
ending it), so callers handle it as any other. What it leaves out: the column types' bind and
result processing.
Parameters go to the driver as given, so give them as the driver stores them (aware datetimes,
str, int, JSON already as text), and rows come back as the driver's tuples. Only for dialects with
named parameters (psycopg's ``%(name)s``); a positional one (SQLite's ``?``) is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable


class DirectStatement:
    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        if compiled.positional:
            raise ValueError(f"{dialect.name} binds parameters by position: use Connection.execute")
        self.sql: str = str(compiled)
        self._dialect = dialect

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """Run the statement in ``conn``'s transaction; the DBAPI cursor, to fetch from."""
        dbapi_conn = conn.connection.dbapi_connection
        cursor = dbapi_conn.cursor()  # type: ignore[union-attr]
        dispatch = conn.dispatch
        if dispatch.before_cursor_execute:
            for listener in dispatch.before_cursor_execute:
                listener(conn, cursor, self.sql, params, None, False)
        try:
            cursor.execute(self.sql, params)
        except self._dialect.loaded_dbapi.Error as exc:
            gone = self._dialect.is_disconnect(exc, dbapi_conn, cursor) or server_ended(exc)
            if gone:
                conn.invalidate(exc)
            raise DBAPIError.instance(
                self.sql,
                params,
                exc,
                self._dialect.loaded_dbapi.Error,
                connection_invalidated=gone,
                dialect=self._dialect,
            ) from exc
        if dispatch.after_cursor_execute:
            for listener in dispatch.after_cursor_execute:
                listener(conn, cursor, self.sql, params, None, False)
        return cursor


# admin_shutdown, crash_shutdown, cannot_connect_now: the server is ending this connection.
_ENDING = frozenset({"57P01", "57P02", "57P03"})


def server_ended(exc: BaseException) -> bool:
    """Whether the driver's error says the server ended the connection, even while the driver
    still reports it open: libpq may read the server's goodbye ("terminating connection due to
    administrator command") before it sees the socket close, and psycopg's ``broken``, which
    SQLAlchemy's check relies on, stays False until then. SQLAlchemy's psycopg2 dialect matches the
    same words."""
    return (
        getattr(exc, "sqlstate", None) in _ENDING or "terminating connection" in str(exc).partition("\n")[0]
    )
