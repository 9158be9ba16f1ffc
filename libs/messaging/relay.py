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

Rows handed over (PostgreSQL, libs/db/handoff.py): while ``run_forever`` runs, the rows this
process writes are held for this relay (``held_by``, until ``held_until``) and handed to it after
their commit; it publishes them at once, without a round, and marks them sent after the confirms.
Other relays take a held row only after its lease (its process died first). Whatever cannot go
that way (a rolled-back savepoint in the writing transaction, a failed publish) falls back to
rounds, which take the rows nobody holds, this relay's own and the expired ones, in id order; the
relay "catches up" (rounds only) until one round has published everything due, so nothing handed
overtakes them. The poll still runs a round every OUTBOX_POLL_SECONDS; stopping lets go of the
rows it still holds.

A relay for its own process's rows only (``run_forever(stop, own_rows_only=True)``, ``python -m
services run --own-relay``): it takes the hand-offs and runs rounds only while catching up; it
neither LISTENs nor polls, so the commits of other processes do not wake it and the rows of the
processes without a relay of their own (and of dead ones, after their lease) are left to the relay
process. This is how the distributed mode's workers publish what they write themselves.
"""

from __future__ import annotations

import contextlib
import logging
import select as _select
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Row, Table, any_, bindparam, event, func, or_, select, text, update
from sqlalchemy.orm import Session

from libs.db import OUTBOX_CHANNEL, OUTBOX_WRITTEN, Database, OutboxMessage, handoff, utcnow
from libs.db.direct import DirectStatement
from libs.db.handoff import HandedRow
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
# A relay takes the rows nobody holds, the ones it holds itself (not handed to it after their
# commit, libs/db/handoff.py), and the ones whose holder's lease has ended (that process died).
_PICKED = (
    select(_OUTBOX.c.id)
    .where(
        _OUTBOX.c.sent_at.is_(None),
        or_(
            _OUTBOX.c.held_by.is_(None),
            _OUTBOX.c.held_by == bindparam("me"),
            _OUTBOX.c.held_until < func.statement_timestamp(),  # the clock that wrote it
        ),
    )
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
# Rows handed over after their commit: marked sent once confirmed (the relay held them, so no
# other relay took them meanwhile); the ones not published are let go, for any relay's rounds.
_MARK_HANDED = update(_OUTBOX).where(_OUTBOX.c.id == any_(bindparam("ids"))).values(sent_at=bindparam("now"))
_LET_GO = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)))
    .values(held_by=None, held_until=None)
)
# A relay that stops lets go of every unsent row it holds.
_LET_ALL_GO = (
    update(_OUTBOX)
    .where(_OUTBOX.c.sent_at.is_(None), _OUTBOX.c.held_by == bindparam("me"))
    .values(held_by=None, held_until=None)
)
# Rows handed over are remembered this long (by id) after a round took them from the database, so
# that a hand-off coming after that round does not publish them again.
_TAKEN_MEMORY = 10_000


# A row the round took or was handed (the columns _TAKE and _UNSENT return, in their order).
_Row = HandedRow


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
        postgresql = db.dialect == "postgresql"
        self._take = DirectStatement(_TAKE, self._engine.dialect) if postgresql else None
        self._mark_handed = DirectStatement(_MARK_HANDED, self._engine.dialect) if postgresql else None
        # This relay's name in held_by: the rows this process writes while run_forever runs are
        # held for it and handed to it after their commit (PostgreSQL, libs/db/handoff.py).
        self.relay_id = uuid.uuid4().hex
        self._handoffs: _HandOffs | None = None
        self._handed: list[_Row] = []  # handed over, not yet published (relay thread only)
        self._taken: OrderedDict[int, None] = OrderedDict()  # ids recent rounds took
        self._catching_up = False  # rows it holds may be unpublished and not handed: rounds first
        self._round_full = self._round_failed = False  # how the last round went
        self._round_at = 0.0  # when it began (time.monotonic())
        self._own_rows_only = False  # run_forever's: no rounds but to catch up

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
        limit = self.settings.OUTBOX_BATCH
        self._round_at = time.monotonic()
        with self._held.connection() as conn, conn.begin():
            taken = take.execute(conn, {"limit": limit, "now": utcnow(), "me": self.relay_id})
            rows = sorted(map(_Row._make, taken.fetchall()))  # RETURNING has no order of its own
            if self._handoffs is not None:
                self._remember_taken(rows)
            sent, failure = self._publish_in_order(rows)
            if failure is not None:
                conn.execute(_UNMARK, {"ids": [row.id for row in rows[len(sent) :]]})
                self._mark(conn, [], failure)
        self._round_full, self._round_failed = len(rows) >= limit, failure is not None
        if len(rows) < 2:
            # Not in a stream (where the next round follows at once): the next round's BEGIN now,
            # off the path of the next lone event.
            self._held.begin_ahead()
        return len(sent)

    def _remember_taken(self, rows: Sequence[_Row]) -> None:
        # A row this relay holds may be taken by a round between its commit and its hand-off:
        # the hand-off must not publish it again.
        for row in rows:
            self._taken[row.id] = None
        while len(self._taken) > _TAKEN_MEMORY:
            self._taken.popitem(last=False)

    def _publish_handed(self, rows: list[_Row]) -> int:
        """Publish rows handed over after their commit (held by this relay: no other relay takes
        them), then mark the confirmed ones sent; on a failure, let go of it and the rows after
        it (rounds take them, in order) and catch up. Returns how many were published."""
        assert self._mark_handed is not None
        with self._round:
            rows.sort()
            sent, failure = self._publish_in_order(rows)
            with self._held.connection() as conn, conn.begin():
                if sent:
                    self._mark_handed.execute(conn, {"ids": sent, "now": utcnow()}).close()
                if failure is not None:
                    conn.execute(_LET_GO, {"ids": [row.id for row in rows[len(sent) :]]})
                    self._mark(conn, [], failure)
            if failure is not None:
                self._catching_up = True
            if len(rows) < 2:
                self._held.begin_ahead()  # as after a round: the next lone event's BEGIN now
        return len(sent)

    def _turn(self, round_due: bool) -> tuple[int, bool | None]:
        """One turn of the loop: a round when one is due (the poll, a notification, a full round
        before) or while catching up, then the rows handed over since the last turn. Returns how
        many rows were published, and what comes next: None, a pause; True, a round at once (a
        full round: more rows are due); False, the rest of the handed rows at once."""
        limit = self.settings.OUTBOX_BATCH
        handoffs = self._handoffs
        if handoffs is None:
            published = self.run_once()
            return published, True if published >= limit else None
        rows, behind = handoffs.drain()
        self._handed.extend(rows)
        self._catching_up = self._catching_up or behind
        # Hand-offs coming in a stream must not put off the poll: it is what takes the rows of
        # dead processes once their lease ends, and rows of this one that were never handed.
        if not self._own_rows_only:
            round_due = round_due or time.monotonic() - self._round_at >= self.settings.OUTBOX_POLL_SECONDS
        published = 0
        if round_due or self._catching_up:
            published = self.run_once()
            if self._round_failed:
                # A row it could not publish: nothing handed may overtake it. Rounds (at each
                # wake-up and poll) until one publishes everything due.
                self._catching_up = True
                return published, None
            if self._round_full:
                return published, True  # more rows are due: rounds first, the handed rows after
            self._catching_up = False  # every row it held is published, the handed ones too
        due = [row for row in self._handed if row.id not in self._taken]
        self._handed = due[limit:]
        if due:
            published += self._publish_handed(due[:limit])
        return published, False if self._handed and not self._catching_up else None

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
    def run_forever(self, stop: threading.Event, *, own_rows_only: bool = False) -> None:
        """Publish rounds until ``stop`` is set: at once while rows keep coming, otherwise every
        OUTBOX_POLL_SECONDS or as soon as a commit wrote outbox rows (PostgreSQL: the NOTIFY of
        any process; SQLite: :meth:`notify`). Errors (database or broker down) are logged and
        retried with a growing pause; they never end the loop.

        ``own_rows_only`` (PostgreSQL): publish the rows this process writes, handed over after
        their commit, and leave the rest to the relay process (no LISTEN, no poll; rounds only
        while catching up, so that nothing handed overtakes a row of this process)."""
        postgresql = self.db.dialect == "postgresql"
        own_rows_only = self._own_rows_only = own_rows_only and postgresql
        if own_rows_only:
            log.info("outbox relay started for this process's rows (the relay process publishes the rest)")
        else:
            log.info("outbox relay started (poll every %g s)", self.settings.OUTBOX_POLL_SECONDS)
        failures = 0
        listener = _Listener(self.db, listen=not own_rows_only) if postgresql else None
        withdraw = None
        if listener is not None:
            # The rows this process writes from now on are held for this relay and handed to it
            # after their commit (one relay per database in a process takes them).
            handoffs = _HandOffs(self.relay_id, _hold_seconds(self.settings))
            withdraw = handoff.offer(self.db.engine, handoffs)
            if withdraw is not None:
                self._handoffs = handoffs
            elif own_rows_only:
                log.warning("another relay of this process takes its rows: this one has nothing to do")
            # Listening before the first round: a commit made while that round runs wakes the
            # next one (LISTEN after it would miss that commit's NOTIFY until the next poll).
            listener.open()
        round_due = not own_rows_only
        try:
            if own_rows_only and self._handoffs is None:
                stop.wait()  # nothing is handed to it: the process's other relay publishes
            while not stop.is_set():
                self._wake.clear()
                try:
                    published, next_turn = self._turn(round_due)
                    failures = 0
                except Exception:
                    failures += 1
                    log.exception("outbox relay round failed (%d in a row)", failures)
                    published, next_turn = 0, None
                    self._catching_up = True  # what it was publishing is left to rounds
                self.publisher.heartbeat_check()
                if next_turn is not None:  # more rows are waiting
                    round_due = next_turn
                    continue
                pause = self.settings.OUTBOX_POLL_SECONDS * (2 ** min(failures, 5))
                gather = self.settings.OUTBOX_GATHER_SECONDS
                waiting_since = time.monotonic()
                round_due = not self._wait(stop, pause, listener) and not own_rows_only
                if published >= 2 and time.monotonic() - waiting_since < gather:
                    # Rows were written while the last round ran and the next commit came at
                    # once: events are streaming in. A moment more gathers several commits into
                    # the next round (one transaction and one wait for confirms for all of them,
                    # and the consumers take them in one batch). A lone event (after a round of
                    # one, or a quiet spell) is published at once.
                    stop.wait(gather)
        finally:
            if withdraw is not None:
                withdraw()
                self._let_all_go()
            if listener is not None:
                listener.close()
            self._close_connections()
            log.info("outbox relay stopped")

    def _let_all_go(self) -> None:
        # Stopping: the rows it holds and has not published go to the other relays now (woken by
        # a notification), not after their lease. Rows handed over are dropped with it.
        handoffs, self._handoffs, self._handed = self._handoffs, None, []
        if handoffs is not None:
            handoffs.close()
        try:
            with self._round, self._held.connection() as conn, conn.begin():
                if conn.execute(_LET_ALL_GO, {"me": self.relay_id}).rowcount:
                    conn.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))
        except Exception as exc:  # the database is down: the leases end by themselves
            log.warning("outbox relay could not let go of its rows (%r); other relays take them later", exc)

    def _wait(self, stop: threading.Event, seconds: float, listener: _Listener | None) -> bool:
        """Wait until a notification, a hand-off, notify(), stop or the end of ``seconds``; True
        when only a hand-off ended it (no round is due for it).

        Stop and notify() are checked in small steps because one thread cannot wait on a socket
        and an Event at once."""
        deadline = time.monotonic() + seconds
        while not stop.is_set() and not self._wake.is_set():
            self._held.end_quiet_transaction()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if listener is not None:
                woken = listener.wait(min(remaining, 0.1), self._handoffs)
                if woken is not None:
                    return woken == HANDED
            else:
                self._wake.wait(min(remaining, 0.1))
        return False

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


# What ended a wait of the listener.
NOTIFIED, HANDED = "notified", "handed"


def _hold_seconds(settings: Settings) -> float:
    """How long a row stays held for the relay of the process that wrote it: other relays take
    it after that (its process died before publishing it). Longer than a publish can take, so
    that a live relay's rows are not published twice."""
    return max(10.0, 2 * settings.PUBLISH_TIMEOUT)


def _readable(filenos: list[int], timeout: float) -> list[int]:
    """The file descriptors among ``filenos`` that are readable within ``timeout`` seconds."""
    poller = _select.poll()
    for fileno in filenos:
        poller.register(fileno, _select.POLLIN)
    return [fileno for fileno, _events in poller.poll(timeout * 1000)]


class _HandOffs:
    """The relay's side of libs/db/handoff.py: the rows committed in this process, handed over
    by the producers' threads for the relay's thread, and a socket that wakes the relay (it
    waits on it and on its LISTEN connection together). One byte at most is pending on it."""

    def __init__(self, relay_id: str, lease_seconds: float) -> None:
        self.relay_id = relay_id
        self.lease_seconds = lease_seconds
        self._rows: list[HandedRow] = []
        self._behind = False
        self._signalled = False
        self._lock = threading.Lock()
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)

    def take(self, rows: list[HandedRow]) -> None:
        with self._lock:
            self._rows.extend(rows)
            self._signal()

    def catch_up(self) -> None:
        with self._lock:
            self._behind = True
            self._signal()

    def _signal(self) -> None:
        if not self._signalled:
            self._signalled = True
            with contextlib.suppress(OSError):
                self._writer.send(b"\0")

    def fileno(self) -> int:
        return self._reader.fileno()

    def drain(self) -> tuple[list[HandedRow], bool]:
        """The rows handed over since the last drain, and whether the relay has to catch up."""
        with self._lock:
            rows, self._rows = self._rows, []
            behind, self._behind = self._behind, False
            if self._signalled:
                self._signalled = False
                with contextlib.suppress(OSError):
                    self._reader.recv(16)
        return rows, behind

    def close(self) -> None:
        self._reader.close()
        self._writer.close()


def _bound_to(session: Session, engine: Engine) -> bool:
    """Whether ``session`` works on ``engine`` (bound to it, or to one of its connections)."""
    bind = session.bind
    return bind is engine or getattr(bind, "engine", None) is engine


class _Listener:
    """PostgreSQL: LISTEN on the channel every committed outbox write notifies (from any process),
    in the relay's own thread, so a commit wakes the relay without a hop through another thread.
    A lost connection is reopened at a later wait; meanwhile the relay's poll is the safety net."""

    def __init__(self, db: Database, *, listen: bool = True) -> None:
        self.db = db
        self._listen = listen  # False: wait for hand-offs only (a relay of its own rows)
        self._raw: Any = None
        self._retry_at = 0.0

    def open(self) -> None:
        """LISTEN now (a failure is logged, and the next wait tries again)."""
        self._connection()

    def wait(self, timeout: float, handoffs: _HandOffs | None = None) -> str | None:
        """NOTIFIED once a notification came (within ``timeout`` seconds; the ones already
        received are taken too: the next round publishes the rows of all those commits), and at
        once after the connection was opened again (commits made while nothing listened are
        due); HANDED when only rows handed over to ``handoffs`` ended the wait; None otherwise."""
        reopened = self._raw is None
        conn = self._connection()
        if conn is None:
            if handoffs is None:
                time.sleep(timeout)
            elif _readable([handoffs.fileno()], timeout):
                return HANDED
            return None
        if reopened:
            return NOTIFIED
        try:
            fileno = conn.fileno()
            ready = _readable([fileno] if handoffs is None else [fileno, handoffs.fileno()], timeout)
            if fileno in ready and list(conn.notifies(timeout=0)):  # all of them: one round for all
                return NOTIFIED
        except Exception as exc:
            log.info("outbox listener lost its connection (%r); polling until it is back", exc)
            self.close()
            self._retry_at = time.monotonic() + 1.0
            return None
        return HANDED if ready else None

    def _connection(self) -> Any:
        if self._raw is not None:
            return self._raw.driver_connection
        if not self._listen or time.monotonic() < self._retry_at:
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
