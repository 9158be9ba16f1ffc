"""Engine, sessions and the unit of work.

    db = Database(settings.database_url)
    with db.uow(org_id=org.id) as uow:          # a tenant-scoped transaction
        s = uow.session.get(HeadshotSession, sid)   # another org's id gives None
        s.move_to("submitted")
        uow.add_message(new_message(SESSION_SUBMITTED, ...))   # outbox row, same transaction
        uow.commit()

Leaving the block without ``commit()`` rolls everything back: the state change and its outbox
row are written together or not at all.
"""

from __future__ import annotations

import select as _select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import (
    Dialect,
    Engine,
    Float,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    inspect,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from libs.contracts import Message
from libs.db import handoff
from libs.db.direct import DirectStatement
from libs.db.models import OutboxMessage
from libs.db.tenancy import scope_session

T = TypeVar("T")

# PostgreSQL NOTIFY channel a transaction that wrote outbox rows signals on commit: relays in other
# processes LISTEN on it, so they publish at once instead of at their next poll. The outbox table's
# statement trigger sends it (migration 0011_outbox_path), in the writer's transaction.
OUTBOX_CHANNEL = "headshots_outbox"

# A pooled PostgreSQL connection idle for longer than this is pinged (one round trip) before use;
# a fresher one is only checked for a server that has hung up on it (no round trip).
PING_AFTER_IDLE_SECONDS = 10.0

# Set in ``Session.info`` by a transaction that wrote outbox rows (the embedded relay's wake-up).
OUTBOX_WRITTEN = "headshots.outbox_written"

_OUTBOX: Table = OutboxMessage.__table__  # type: ignore[assignment]
# inline(): no RETURNING of the new id (nothing reads it back), so no result to set up per event.
_INSERT_OUTBOX = insert(_OUTBOX).inline()
# PostgreSQL: the same INSERT compiled once per dialect and run on the driver's cursor
# (libs/db/direct.py): SQLAlchemy's execution of it cost about a sixth of a one-event producer
# transaction's CPU (docs/messaging.md). A row held for this process's relay (libs/db/handoff.py)
# is written with its holder and lease, and its id comes back: the relay's header needs it.
_DIRECT_INSERTS: dict[tuple[type[Dialect], bool], DirectStatement] = {}
# The end of a held row's lease by the database's clock (``lease_seconds`` after the INSERT): the
# relays of other processes, maybe on other machines, compare it with the same clock.
_LEASE_END = func.statement_timestamp() + literal_column("interval '1 second'") * bindparam(
    "lease_seconds", type_=Float
)


def _direct_insert(dialect: Dialect, row: dict[str, Any], held: bool) -> DirectStatement | None:
    if dialect.name != "postgresql":
        return None  # SQLite binds by position: SQLAlchemy's own execution
    statement = _DIRECT_INSERTS.get((type(dialect), held))
    if statement is None:  # the columns outbox_row() gives, as named parameters
        columns: dict[str, Any] = {name: bindparam(name) for name in row if name != "lease_seconds"}
        if held:
            columns["held_until"] = _LEASE_END
        values = insert(_OUTBOX).values(columns)
        built = values.returning(_OUTBOX.c.id) if held else values.inline()
        statement = _DIRECT_INSERTS[(type(dialect), held)] = DirectStatement(built, dialect)
    return statement


def outbox_row(message: Message) -> dict[str, Any]:
    """The outbox columns of a message not yet sent (what ``UnitOfWork.add_message`` writes)."""
    return {
        "message_id": message.message_id,
        "routing_key": message.routing_key,
        "org_id": message.org_id,
        "session_id": message.session_id,
        "body": message.to_json(),
        "created_at": message.occurred_at,
        "attempts": 0,
    }


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        # Worker threads share one file in the embedded mode: allow cross-thread use, wait on locks.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # With WAL, NORMAL syncs at checkpoints rather than at every commit: a crash of the
            # process loses nothing, a power cut may lose the last commits (the embedded mode is
            # one machine's demo and development mode; production runs on PostgreSQL).
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # Erased values are overwritten with zeros instead of lingering in free pages.
            cur.execute("PRAGMA secure_delete=ON")
            cur.close()

        return engine
    engine = create_engine(url, **kwargs)
    _check_liveness_on_checkout(engine)
    return engine


def _check_liveness_on_checkout(engine: Engine) -> None:
    """Make sure a pooled connection still works before it is handed out, without SQLAlchemy's
    pre-ping round trip on every checkout (a third of a short transaction's time here).

    A server that restarted or ended the connection has sent its goodbye (or closed the socket):
    the idle connection's socket is readable, which a zero-timeout select() sees at no cost. A
    connection idle for longer than PING_AFTER_IDLE_SECONDS (a firewall may have dropped it
    silently) is pinged as well. Either failure makes the pool discard it and take another."""

    @event.listens_for(engine, "checkin")
    def _idle_since(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _alive(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None:
            return  # a new connection
        if server_spoke(dbapi_conn):
            raise DisconnectionError("the server closed this connection")
        if time.monotonic() - idle_since > PING_AFTER_IDLE_SECONDS:
            try:
                engine.dialect.do_ping(dbapi_conn)  # SQLAlchemy's own ping: no transaction left open
            except Exception as exc:
                raise DisconnectionError(f"ping failed: {exc}") from exc


def server_spoke(dbapi_conn: Any) -> bool:
    """Whether an idle connection's socket is readable (a zero-timeout select, no round trip):
    the server sends nothing to an idle connection, or one idle in a transaction, unless it is
    ending it. A socket that cannot be checked counts as readable (the connection is gone)."""
    try:
        readable, _, _ = _select.select([dbapi_conn.fileno()], [], [], 0)
    except (OSError, ValueError, AttributeError):
        return True
    return bool(readable)


class Database:
    def __init__(self, url: str, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self, org_id: str | None = None, *, all_orgs: bool = False) -> Session:
        """A new ORM session. Give ``org_id`` to scope every read and write to one organization;
        ``all_orgs=True`` is the explicit, audited choice of support staff and system workers."""
        if org_id is None and not all_orgs:
            raise ValueError("a session needs an org_id, or all_orgs=True for cross-org work")
        session = self._sessions()
        if org_id is not None:
            scope_session(session, org_id)
        return session

    @contextmanager
    def uow(self, org_id: str | None = None, *, all_orgs: bool = False) -> Iterator[UnitOfWork]:
        uow = UnitOfWork(self.session(org_id, all_orgs=all_orgs))
        try:
            yield uow
        finally:
            uow.close()

    def unsynced_engine(self) -> Engine:
        """An engine of its own whose commits do not wait for the disk (PostgreSQL
        ``synchronous_commit=off``), for writes that may be lost in a server crash because losing
        them only repeats work, never skips it: the outbox relay's "sent" marks (a row whose mark
        is lost is published again, and consumers drop the copy). Its connections serve nothing
        else. The caller disposes of it. SQLite: the database's own engine (do not dispose)."""
        if self.dialect != "postgresql":
            return self.engine
        return make_engine(
            self.url, pool_size=1, max_overflow=1, connect_args={"options": "-c synchronous_commit=off"}
        )

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


class UnitOfWork:
    """One transaction: the ORM session plus the outbox messages written with it."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.committed = False

    def add_message(self, message: Message) -> None:
        """Write ``message`` to the outbox in this transaction (published by the relay once it
        commits, in the order written; ``created_at`` is the message's ``occurred_at``).

        One INSERT, at once, through the session's connection rather than the ORM's unit of work:
        the row is never read back through the ORM, and this is on the path of every event. On
        PostgreSQL the table's trigger sends the relays' NOTIFY, delivered only on commit; but
        while a relay runs in this process the row is held for it and handed to it after the
        commit instead (libs/db/handoff.py), and no NOTIFY is sent."""
        conn, row = self.session.connection(), outbox_row(message)
        taker = handoff.taker_for(conn.engine) if conn.dialect.name == "postgresql" else None
        if taker is not None:
            row["held_by"] = taker.relay_id
            row["lease_seconds"] = taker.lease_seconds  # held_until: _LEASE_END
        direct = _direct_insert(conn.dialect, row, held=taker is not None)
        if direct is None:
            conn.execute(_INSERT_OUTBOX, row)
        elif taker is None:
            direct.execute(conn, row).close()
        else:
            cursor = direct.execute(conn, row)
            (row_id,) = cursor.fetchone()
            cursor.close()
            handed = handoff.HandedRow(row_id, message.routing_key, message.message_id, row["body"])
            handoff.note_written(self.session, conn, taker, handed)
        self.session.info[OUTBOX_WRITTEN] = True

    def get_for_update(self, model: type[T], ident: Any) -> T | None:
        """The row ``ident``, locked against other writers until this transaction ends (tenant-scoped
        like every read: another organization's row is None).

        PostgreSQL: ``SELECT ... FOR UPDATE``. SQLite has no row locks and Python's sqlite3 opens a
        transaction only at the first write, so a no-op UPDATE of the row goes first: it takes the
        database's write lock (waiting for any other writer), and the SELECT after it sees the latest
        data. The no-op sets columns with an ``onupdate`` (e.g. updated_at) to themselves so nothing
        changes."""
        mapper = inspect(model)
        key = mapper.primary_key[0]
        if self.session.get_bind().dialect.name == "sqlite":
            columns = [c for c in mapper.columns if c.onupdate is not None] or [
                next(c for c in mapper.columns if not c.primary_key)
            ]
            self.session.execute(
                update(model)
                .where(key == ident)
                .values({c.key: c for c in columns})
                .execution_options(synchronize_session=False)
            )
        query = select(model).where(key == ident).with_for_update().execution_options(populate_existing=True)
        return self.session.scalar(query)

    def flush(self) -> None:
        self.session.flush()

    def commit(self) -> None:
        self.session.commit()
        self.committed = True

    def rollback(self) -> None:
        self.session.rollback()

    def close(self) -> None:
        if self.session.in_transaction() and not self.committed:
            self.session.rollback()
        self.session.close()
