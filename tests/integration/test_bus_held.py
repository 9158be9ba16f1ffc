"""The connection a relay or a consumer holds sends its next transaction's BEGIN ahead, off the
next message's path, and gives an unused one back after a quiet spell (PostgreSQL)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import text

from libs.db import Database
from libs.messaging.held import HeldConnection

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def holding(url: str) -> Iterator[tuple[Database, HeldConnection]]:
    db = Database(url)
    held = HeldConnection(db)
    try:
        yield db, held
    finally:
        held.close()
        db.dispose()


def backend_state(db: Database, pid: int) -> str:
    with db.engine.connect() as conn:
        return conn.execute(
            text("SELECT state FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        ).scalar_one()


def server_clock(db: Database) -> datetime:
    """The server's clock now (a reference for transaction_timestamp(), no timing involved)."""
    with db.engine.connect() as conn:
        return conn.execute(text("SELECT clock_timestamp()")).scalar_one()


def test_the_next_transaction_is_begun_ahead_and_an_unused_one_given_back(pg_url: str) -> None:
    with holding(pg_url) as (db, held):
        with held.session(all_orgs=True) as session:
            pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            session.commit()
        assert backend_state(db, pid) == "idle"

        held.begin_ahead()
        assert backend_state(db, pid) == "idle in transaction"
        time.sleep(0.3)
        with held.session(all_orgs=True) as session:
            # The session runs in the transaction begun 0.3 s ago: no BEGIN of its own.
            began, now = session.execute(text("SELECT transaction_timestamp(), statement_timestamp()")).one()
            session.commit()
        assert (now - began).total_seconds() >= 0.25
        assert backend_state(db, pid) == "idle"

        held.begin_ahead()
        held.end_quiet_transaction()  # just begun: kept
        assert backend_state(db, pid) == "idle in transaction"
        held.end_quiet_transaction(after=0.0)  # unused for long enough: rolled back
        assert backend_state(db, pid) == "idle"
        before = server_clock(db)
        with held.session(all_orgs=True) as session:  # and the next one sends its own BEGIN
            began = session.execute(text("SELECT transaction_timestamp()")).scalar_one()
            assert session.execute(text("SELECT pg_backend_pid()")).scalar_one() == pid
            session.commit()
        assert began > before  # begun by this session, not the one rolled back


def test_a_transaction_begun_ahead_holds_up_no_concurrent_index_build(pg_url: str) -> None:
    """Begun ahead and waiting, the transaction has no snapshot and no lock: an index built
    concurrently (which waits for older snapshots and for lockers of its table) is not held up."""
    with holding(pg_url) as (db, held):
        with held.connection() as conn, conn.begin():
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            conn.execute(text("CREATE TABLE waiting_rows (n integer)"))
            conn.execute(text("INSERT INTO waiting_rows VALUES (1)"))
        held.begin_ahead()
        assert backend_state(db, pid) == "idle in transaction"
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as admin:
            xid, xmin = admin.execute(
                text("SELECT backend_xid, backend_xmin FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            ).one()
            assert (xid, xmin) == (None, None)  # no transaction id, no snapshot
            # Held up, it would fail after 10 s rather than hang the suite.
            admin.execute(text("SET statement_timeout = '10s'"))
            admin.execute(text("CREATE INDEX CONCURRENTLY waiting_rows_n ON waiting_rows (n)"))
            valid = admin.execute(
                text("SELECT indisvalid FROM pg_index WHERE indexrelid = 'waiting_rows_n'::regclass")
            ).scalar_one()
        assert valid is True
        assert backend_state(db, pid) == "idle in transaction"  # still begun ahead, still usable
        with held.session(all_orgs=True) as session:
            assert session.execute(text("SELECT count(*) FROM waiting_rows")).scalar_one() == 1
            session.commit()


def test_a_begun_ahead_connection_the_server_ended_is_replaced(pg_url: str) -> None:
    with holding(pg_url) as (db, held):
        with held.connection() as conn, conn.begin():
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        held.begin_ahead()
        with db.engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            admin.commit()
        time.sleep(0.2)
        held.end_quiet_transaction(after=0.0)  # its ROLLBACK fails: the connection is given up
        with held.session(all_orgs=True) as session:
            pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            session.commit()
        # Ended while it waited, then used: the session gets a new connection, not an error.
        held.begin_ahead()
        with db.engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            admin.commit()
        time.sleep(0.2)
        with held.session(all_orgs=True) as session:
            assert session.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
            session.commit()


def test_a_transaction_begun_ahead_ends_with_its_connection(pg_url: str) -> None:
    with holding(pg_url) as (db, held):
        with held.connection() as conn, conn.begin():
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        held.begin_ahead()
        assert backend_state(db, pid) == "idle in transaction"
        before = server_clock(db)  # after the BEGIN sent ahead
        held.close()  # e.g. the relay stopping while it waits
        held.end_quiet_transaction(after=0.0)  # nothing left to roll back: not an error
        with held.session(all_orgs=True) as session:  # a new connection, with its own BEGIN
            began = session.execute(text("SELECT transaction_timestamp()")).scalar_one()
            assert session.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
            session.commit()
        assert began > before


def test_nothing_is_begun_ahead_on_sqlite(sqlite_url: str) -> None:
    with holding(sqlite_url) as (db, held):
        with held.session(all_orgs=True) as session:
            session.execute(text("SELECT 1"))
            session.commit()
        held.begin_ahead()
        with held.connection() as conn:
            assert not conn.in_transaction()
