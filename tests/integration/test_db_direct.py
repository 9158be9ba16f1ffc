"""DirectStatement: a Core statement compiled once and run on the driver's cursor, inside
SQLAlchemy's transaction (PostgreSQL, as the relay's round and the consumer's claim use it)."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import event, func, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from libs.db import Database, ProcessedMessage, utcnow
from libs.db.direct import DirectStatement, server_ended
from tests.support.database import end_backends

pytestmark = pytest.mark.integration

_PROCESSED = ProcessedMessage.__table__
CLAIM = insert(_PROCESSED).returning(_PROCESSED.c.message_id)


@pytest.fixture
def db(pg_url: str):
    database = Database(pg_url)
    yield database
    database.dispose()


def claimed(db: Database) -> list[str]:
    with db.engine.connect() as conn:
        return list(conn.scalars(select(_PROCESSED.c.message_id).order_by(_PROCESSED.c.message_id)))


def row(message_id: str) -> dict[str, object]:
    return {"consumer": "review.q", "message_id": message_id, "processed_at": utcnow()}


def test_it_runs_in_the_connections_transaction_and_calls_the_cursor_listeners(db: Database) -> None:
    claim = DirectStatement(CLAIM, db.engine.dialect)
    seen: list[tuple[str, str]] = []
    event.listen(db.engine, "before_cursor_execute", lambda *a: seen.append(("before", a[2])))
    event.listen(db.engine, "after_cursor_execute", lambda *a: seen.append(("after", a[2])))

    with db.engine.connect() as conn:
        with conn.begin():
            assert claim.execute(conn, row("m-1")).fetchall() == [("m-1",)]  # the driver's tuples
        with conn.begin() as transaction:
            claim.execute(conn, row("m-2"))
            transaction.rollback()  # SQLAlchemy's transaction: the direct statement goes with it

    assert claimed(db) == ["m-1"]
    assert seen.count(("before", claim.sql)) == 2 and seen.count(("after", claim.sql)) == 2


def test_a_driver_error_is_raised_as_sqlalchemys_and_the_connection_carries_on(db: Database) -> None:
    claim = DirectStatement(CLAIM, db.engine.dialect)
    with db.engine.connect() as conn:
        with conn.begin():
            claim.execute(conn, row("m-1"))
        with pytest.raises(IntegrityError, match="duplicate key") as raised, conn.begin():
            claim.execute(conn, row("m-1"))
        assert not raised.value.connection_invalidated
        with conn.begin():
            claim.execute(conn, row("m-2"))
    assert claimed(db) == ["m-1", "m-2"]


def test_a_connection_the_server_ended_is_invalidated_and_the_next_statement_reconnects(db: Database) -> None:
    claim = DirectStatement(CLAIM, db.engine.dialect)
    with db.engine.connect() as conn:
        pid = conn.scalar(select(func.pg_backend_pid()))
        conn.rollback()
        assert end_backends(db, [pid]) == 1
        with pytest.raises(OperationalError) as raised, conn.begin():
            claim.execute(conn, row("m-1"))
        assert raised.value.connection_invalidated
        assert conn.invalidated
        with conn.begin():  # SQLAlchemy opens a new connection, as after any of its own statements
            claim.execute(conn, row("m-2"))
            assert conn.scalar(select(func.pg_backend_pid())) != pid
    assert claimed(db) == ["m-2"]


def test_the_servers_goodbye_read_before_the_socket_closed_invalidates_too(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # libpq can read "terminating connection" while the socket still looks open: psycopg's
    # `broken` (SQLAlchemy's own check) is then False. Played here with the driver's own error.
    goodbye = psycopg.OperationalError(
        "sending query failed: terminating connection due to administrator command\n"
        "another command is already in progress"
    )
    claim = DirectStatement(CLAIM, db.engine.dialect)
    with db.engine.connect() as conn:
        with monkeypatch.context() as patched:
            patched.setattr(psycopg.Cursor, "execute", lambda *_a, **_k: (_ for _ in ()).throw(goodbye))
            with pytest.raises(OperationalError) as raised, conn.begin():
                claim.execute(conn, row("m-1"))
        assert raised.value.connection_invalidated and conn.invalidated
        with conn.begin():
            claim.execute(conn, row("m-2"))
    assert claimed(db) == ["m-2"]
    assert server_ended(psycopg.errors.AdminShutdown("ended")) and server_ended(
        psycopg.errors.CrashShutdown()
    )
    assert not server_ended(psycopg.OperationalError("could not obtain lock on row"))


def test_a_dialect_that_binds_by_position_is_refused(sqlite_url: str) -> None:
    with pytest.raises(ValueError, match="by position"):
        DirectStatement(CLAIM, sa.create_engine(sqlite_url).dialect)
