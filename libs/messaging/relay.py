"""The transactional outbox relay: publishes committed outbox rows, in id order, with confirms.

    relay = OutboxRelay(db, Publisher(settings), settings)
    relay.run_once()                          # one round; returns how many rows it published
    threading.Thread(target=relay.run_forever, args=(stop,)).start()
    relay.notify()                            # wake it now (SQLite: Bus hooks every commit)

On PostgreSQL every transaction that wrote outbox rows sends a NOTIFY on commit, from any process,
and ``run_forever`` waits on LISTEN in its own thread: one commit, one round, at once.

Producers write their state change and an outbox row in one transaction (``uow.add_message``);
this relay is the only thing that moves rows to the broker. A row is marked ``sent_at`` only after
the broker confirmed it, so a crash between commit and publish (or between publish and mark) is
repaired by the next round: delivery is at-least-once, and consumers drop the duplicates by
message_id. A failed publish leaves the row unsent, counts the attempt, keeps the error in
``last_error``, and ends the round so later rows never overtake it. While events stream in, the
relay waits OUTBOX_GATHER_SECONDS before the next round, so they go out in fuller rounds.

PostgreSQL: each round takes its rows with one ``UPDATE ... SET sent_at`` over a ``SELECT ... FOR
UPDATE SKIP LOCKED`` (marked and locked at once), publishes them, and commits once they are
confirmed; rows it could not publish are unmarked first. The locks last until that commit, so any
number of relays (one per service process) publish each row exactly once between them. The
relay's own connection commits without waiting for the disk (``synchronous_commit=off``): a mark
lost in a server crash only publishes that row again. SQLite (embedded mode) has no row locks: a
round reads the rows, publishes them, then marks them in a short write transaction, so producers
are never blocked behind a publish.
That is correct for the one relay the embedded process runs (rounds are serialized by a lock); a
second process relaying the same SQLite file would publish duplicates, never lose a row.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, Row, Table, bindparam, event, select, update
from sqlalchemy.orm import Session

from libs.db import OUTBOX_CHANNEL, OUTBOX_WRITTEN, Database, OutboxMessage, utcnow
from libs.db.direct import DirectStatement
from libs.messaging.headers import OUTBOX_ID_HEADER
from libs.messaging.held import HeldConnection
from libs.messaging.publisher import Outgoing, Publisher
from libs.settings import Settings

log = logging.getLogger("headshots.messaging.relay")

# Every published row carries its outbox id (OUTBOX_ID_HEADER): the gateway tags live events with
# it, so a waiting page that reconnects can ask for what came after the last id it saw.
__all__ = ["OUTBOX_ID_HEADER", "OutboxRelay"]

# The round's statements, built once (SQLAlchemy Core on the relay's own connection: no ORM
# session per round; the compiled forms are cached).
_OUTBOX: Table = OutboxMessage.__table__  # type: ignore[assignment]
_UNSENT = (
    select(_OUTBOX.c.id, _OUTBOX.c.routing_key, _OUTBOX.c.message_id, _OUTBOX.c.body)
    .where(_OUTBOX.c.sent_at.is_(None))
    .order_by(_OUTBOX.c.id)
    .limit(bindparam("limit"))
)
# PostgreSQL: take the round's rows and mark them sent in one statement. The marks are part of
# the round's transaction, committed only once the broker confirmed; rows it could not publish
# are unmarked again before the commit (_UNMARK): "sent" is only committed for a confirmed row.
_PICKED = (
    select(_OUTBOX.c.id)
    .where(_OUTBOX.c.sent_at.is_(None))
    .order_by(_OUTBOX.c.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
    .cte("picked")
)
_TAKE = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == _PICKED.c.id)
    .values(sent_at=bindparam("now"))
    .returning(_OUTBOX.c.id, _OUTBOX.c.routing_key, _OUTBOX.c.message_id, _OUTBOX.c.body)
)
_UNMARK = update(_OUTBOX).where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True))).values(sent_at=None)
_MARK_SENT = (
    update(_OUTBOX).where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True))).values(sent_at=bindparam("now"))
)
_MARK_FAILED = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("row_id"))
    .values(attempts=_OUTBOX.c.attempts + 1, last_error=bindparam("error"))
)


class _Row(NamedTuple):
    """A row the round took (the columns _TAKE and _UNSENT return, in their order)."""

    id: int
    routing_key: str
    message_id: str
    body: str


class OutboxRelay:
    def __init__(self, db: Database, publisher: Publisher, settings: Settings) -> None:
        self.db = db
        self.publisher = publisher
        self.settings = settings
        self._wake = threading.Event()
        self._round = threading.Lock()  # one round at a time in this process
        self._unhook: Callable[[], None] | None = None
        # The relay's own connection (no pool checkout per round), whose commits do not wait for
        # the disk: a "sent" mark lost in a server crash only publishes that row again.
        self._engine = db.unsynced_engine()
        self._held = HeldConnection(db, self._engine)
        # PostgreSQL: the round's UPDATE goes to the driver's cursor, compiled once (SQLAlchemy's
        # execution of it cost more than its round trip, libs/db/direct.py).
        self._take = DirectStatement(_TAKE, self._engine.dialect) if db.dialect == "postgresql" else None

    # --- one round ---------------------------------------------------------------------------------
    def run_once(self) -> int:
        """Publish up to OUTBOX_BATCH unsent rows; return how many were published."""
        with self._round:
            if self._take is not None:  # PostgreSQL
                return self._round_locked(self._take)
            return self._round_unlocked()

    def _round_locked(self, take: DirectStatement) -> int:
        # BEGIN, one UPDATE ... RETURNING that locks and marks the round's rows, COMMIT after the
        # confirms: the row locks keep every other relay off these rows until then.
        with self._held.connection() as conn, conn.begin():
            taken = take.execute(conn, {"limit": self.settings.OUTBOX_BATCH, "now": utcnow()})
            rows = sorted(map(_Row._make, taken.fetchall()))  # RETURNING has no order of its own
            sent, failure = self._publish_in_order(rows)
            if failure is not None:
                conn.execute(_UNMARK, {"ids": [row.id for row in rows[len(sent) :]]})
                self._mark(conn, [], failure)
        if len(rows) < 2:
            # Not in a stream (where the next round follows at once): the next round's BEGIN now,
            # off the path of the next lone event.
            self._held.begin_ahead()
        return len(sent)

    def _round_unlocked(self) -> int:
        with self._held.connection() as conn:
            with conn.begin():  # ends the read transaction before publishing
                rows = conn.execute(_UNSENT, {"limit": self.settings.OUTBOX_BATCH}).all()
            sent, failure = self._publish_in_order(rows)
            if sent or failure:
                with conn.begin():
                    self._mark(conn, sent, failure)
        return len(sent)

    def _publish_in_order(
        self, rows: Sequence[_Row | Row[Any, Any, Any, Any]]
    ) -> tuple[list[int], tuple[int, str] | None]:
        """Publish the rows (confirms awaited together); return the ids confirmed, in order up to
        the first failure, and (id, error) of that failure: it and every later row stay unsent."""
        batch = [
            Outgoing(row.body, row.routing_key, row.message_id, {OUTBOX_ID_HEADER: row.id}) for row in rows
        ]
        done, error = self.publisher.publish_many(batch)
        sent = [row.id for row in rows[:done]]
        if error is None:
            return sent, None
        failed = rows[done]
        log.warning("outbox row %s (%s) not published, will retry: %s", failed.id, failed.routing_key, error)
        return sent, (failed.id, error)

    @staticmethod
    def _mark(conn: Connection, sent: list[int], failure: tuple[int, str] | None) -> None:
        if sent:
            conn.execute(_MARK_SENT, {"ids": sent, "now": utcnow()})
        if failure is not None:
            row_id, error = failure
            conn.execute(_MARK_FAILED, {"row_id": row_id, "error": error})

    # --- running -----------------------------------------------------------------------------------
    def run_forever(self, stop: threading.Event) -> None:
        """Publish rounds until ``stop`` is set: at once while rows keep coming, otherwise every
        OUTBOX_POLL_SECONDS or as soon as a commit wrote outbox rows (PostgreSQL: the NOTIFY of
        any process; SQLite: :meth:`notify`). Errors (database or broker down) are logged and
        retried with a growing pause; they never end the loop."""
        log.info("outbox relay started (poll every %g s)", self.settings.OUTBOX_POLL_SECONDS)
        failures = 0
        listener = _Listener(self.db) if self.db.dialect == "postgresql" else None
        if listener is not None:
            # Listening before the first round: a commit made while that round runs wakes the
            # next one (LISTEN after it would miss that commit's NOTIFY until the next poll).
            listener.open()
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    published = self.run_once()
                    failures = 0
                except Exception:
                    failures += 1
                    log.exception("outbox relay round failed (%d in a row)", failures)
                    published = 0
                self.publisher.heartbeat_check()
                if published >= self.settings.OUTBOX_BATCH:
                    continue  # more rows are probably waiting
                pause = self.settings.OUTBOX_POLL_SECONDS * (2 ** min(failures, 5))
                gather = self.settings.OUTBOX_GATHER_SECONDS
                waiting_since = time.monotonic()
                self._wait(stop, pause, listener)
                if published >= 2 and time.monotonic() - waiting_since < gather:
                    # Rows were written while the last round ran and the next commit came at
                    # once: events are streaming in. A moment more gathers several commits into
                    # the next round (one transaction and one wait for confirms for all of them,
                    # and the consumers take them in one batch). A lone event (after a round of
                    # one, or a quiet spell) is published at once.
                    stop.wait(gather)
        finally:
            if listener is not None:
                listener.close()
            self._close_connections()
            log.info("outbox relay stopped")

    def _wait(self, stop: threading.Event, seconds: float, listener: _Listener | None) -> None:
        # A notification, notify() and stop all end the pause early; stop and notify() are checked
        # in small steps because one thread cannot wait on a socket and an Event at once.
        deadline = time.monotonic() + seconds
        while not stop.is_set() and not self._wake.is_set():
            self._held.end_quiet_transaction()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if listener is not None:
                if listener.wait(min(remaining, 0.1)):
                    return
            else:
                self._wake.wait(min(remaining, 0.1))

    def notify(self) -> None:
        """Wake the relay now (a producer has just committed outbox rows)."""
        self._wake.set()

    def wake_after_commits(self) -> None:
        """Call :meth:`notify` after every commit of this database that wrote outbox rows.

        Listens to SQLAlchemy session events for sessions bound to ``db.engine`` only; undone
        by :meth:`close`. This is what makes the embedded mode publish right after a commit. On PostgreSQL the
        relay listens to the NOTIFY every such commit sends, from any process, instead: nothing
        is hooked, so one commit wakes one round, not two."""
        if self._unhook is not None or self.db.dialect == "postgresql":
            return
        engine = self.db.engine

        def after_commit(session: Session) -> None:
            if session.info.pop(OUTBOX_WRITTEN, False) and _bound_to(session, engine):
                self.notify()

        def after_rollback(session: Session) -> None:
            if not session.in_transaction():  # the whole transaction, not a savepoint of it
                session.info.pop(OUTBOX_WRITTEN, None)

        listeners: list[tuple[str, Callable[..., None]]] = [
            ("after_commit", after_commit),
            ("after_soft_rollback", lambda session, _previous: after_rollback(session)),
        ]
        for name, fn in listeners:
            event.listen(Session, name, fn)

        def unhook() -> None:
            for name, fn in listeners:
                event.remove(Session, name, fn)

        self._unhook = unhook

    def close(self) -> None:
        if self._unhook is not None:
            self._unhook()
            self._unhook = None
        self._close_connections()

    def _close_connections(self) -> None:
        with self._round:
            self._held.close()
            if self._engine is not self.db.engine:
                self._engine.dispose()
        self.publisher.close()


def _bound_to(session: Session, engine: Engine) -> bool:
    """Whether ``session`` works on ``engine`` (bound to it, or to one of its connections)."""
    bind = session.bind
    return bind is engine or getattr(bind, "engine", None) is engine


class _Listener:
    """PostgreSQL: LISTEN on the channel every committed outbox write notifies (from any process),
    in the relay's own thread, so a commit wakes the relay without a hop through another thread.
    A lost connection is reopened at a later wait; meanwhile the relay's poll is the safety net."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._raw: Any = None
        self._retry_at = 0.0

    def open(self) -> None:
        """LISTEN now (a failure is logged, and the next wait tries again)."""
        self._connection()

    def wait(self, timeout: float) -> bool:
        """True once a notification came (within ``timeout`` seconds). The ones already received
        are taken too: the next round publishes the rows of all those commits. True at once
        after the connection was opened again: commits made while nothing listened are due."""
        reopened = self._raw is None
        conn = self._connection()
        if conn is None:
            time.sleep(timeout)
            return False
        if reopened:
            return True
        try:
            if not any(True for _ in conn.notifies(timeout=timeout, stop_after=1)):
                return False
            for _ in conn.notifies(timeout=0):
                pass
            return True
        except Exception as exc:
            log.info("outbox listener lost its connection (%r); polling until it is back", exc)
            self.close()
            self._retry_at = time.monotonic() + 1.0
            return False

    def _connection(self) -> Any:
        if self._raw is not None:
            return self._raw.driver_connection
        if time.monotonic() < self._retry_at:
            return None
        try:
            raw = self.db.engine.raw_connection()
            conn: Any = raw.driver_connection
            conn.autocommit = True
            conn.execute(f"LISTEN {OUTBOX_CHANNEL}")
        except Exception as exc:
            log.info("outbox listener could not connect (%r); polling meanwhile", exc)
            self._retry_at = time.monotonic() + 1.0
            return None
        self._raw = raw
        return conn

    def close(self) -> None:
        if self._raw is not None:
            with contextlib.suppress(Exception):
                self._raw.invalidate()  # a LISTENing connection must not go back to the pool
            self._raw = None
