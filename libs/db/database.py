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

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, inspect, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from libs.contracts import Message
from libs.db.models import OutboxMessage
from libs.db.tenancy import scope_session

T = TypeVar("T")

# PostgreSQL NOTIFY channel a transaction that wrote outbox rows signals on commit: relays in other
# processes LISTEN on it, so they publish at once instead of at their next poll.
OUTBOX_CHANNEL = "headshots_outbox"


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        # Worker threads share one file in the embedded mode: allow cross-thread use, wait on locks.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # Erased values are overwritten with zeros instead of lingering in free pages.
            cur.execute("PRAGMA secure_delete=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


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
        self._notifying = False

    def add_message(self, message: Message) -> OutboxMessage:
        row = OutboxMessage(
            message_id=message.message_id,
            routing_key=message.routing_key,
            org_id=message.org_id,
            session_id=message.session_id,
            body=message.to_json(),
            created_at=message.occurred_at,
        )
        self.session.add(row)
        if not self._notifying and self.session.get_bind().dialect.name == "postgresql":
            # Delivered only if (and when) this transaction commits; once per transaction is enough.
            self.session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": OUTBOX_CHANNEL})
            self._notifying = True
        return row

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
        self._notifying = False

    def rollback(self) -> None:
        self.session.rollback()
        self._notifying = False

    def close(self) -> None:
        if self.session.in_transaction() and not self.committed:
            self.session.rollback()
        self.session.close()
