"""Outbox rows handed to the relay of the process that wrote them (PostgreSQL).

    withdraw = offer(db.engine, relay_side)     # the relay's loop, while it runs
    ...                                         # UnitOfWork.add_message writes held rows
    withdraw()

A relay whose loop runs in this process offers to publish the outbox rows this process writes.
While it does, ``UnitOfWork.add_message`` writes each row as held by that relay (``held_by``, and
``held_until``, the end of a lease) and reads its id back; once the transaction has committed,
the rows are handed to the relay in memory (``Taker.take``), and it publishes them at once: no
UPDATE to find and take them first, which was a third of a lone event's time from the producer's
commit to the publish (docs/messaging.md). Other relays take a held row only once its lease has
ended (the writing process died before publishing it), and are not woken for it (the outbox's
NOTIFY fires only for rows nobody holds, migration 0012_outbox_held).

Nothing is handed that did not commit: the rows go over in the session's ``after_commit`` of the
whole transaction (not a savepoint's), and a rolled-back transaction drops its rows. When a
savepoint of the transaction was rolled back, some of its rows are gone and the rest are not
handed one by one either: the relay is told to catch up instead (``Taker.catch_up``), and takes
every row it holds from the database, in id order, in its next round. So it is when the session
only joined a transaction of its connection's (its commit committed nothing yet). A row held but never
handed (a commit whose hook did not run) is taken the same way by that relay's rounds, which
take the rows it holds besides the ones nobody holds.
"""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Connection, Engine, event
from sqlalchemy.orm import Session, SessionTransaction

__all__ = ["HandedRow", "Taker", "note_written", "offer", "taker_for"]


class HandedRow(NamedTuple):
    """A committed outbox row, as the relay publishes it (the columns its rounds read, in order)."""

    id: int
    routing_key: str
    message_id: str
    body: str


class Taker(Protocol):
    """The relay's side of the hand-off (called from the producers' threads)."""

    relay_id: str  # written to held_by
    lease_seconds: float  # held_until = the write's time, by the database's clock, + this

    def take(self, rows: list[HandedRow]) -> None:
        """Rows just committed, in the order written: publish them."""

    def catch_up(self) -> None:
        """Rows held by this relay were committed but cannot be handed (a savepoint of their
        transaction was rolled back): take every held row from the database, in id order."""


# One taker per engine the producers write through (the relay's loop in this process).
_TAKERS: weakref.WeakKeyDictionary[Engine, Taker] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()
# Session.info key of the rows a transaction wrote as held.
_PENDING = "headshots.outbox_handed"
# A process forked from one whose relay takes hand-offs has no such relay (threads do not survive
# a fork): its rows are not held.
os.register_at_fork(after_in_child=_TAKERS.clear)


@dataclass
class _Pending:
    taker: Taker
    rows: list[HandedRow] = field(default_factory=list)
    connections: set[Connection] = field(default_factory=set)
    spoiled: bool = False  # a savepoint was rolled back: hand nothing, catch up instead


def offer(engine: Engine, taker: Taker) -> Any:
    """Hand ``taker`` the rows committed through ``engine`` from now on; the function that
    withdraws the offer, or None when another taker has the engine already (one per engine)."""
    with _LOCK:
        if engine in _TAKERS:
            return None
        _TAKERS[engine] = taker
        _listen()

    def withdraw() -> None:
        with _LOCK:
            if _TAKERS.get(engine) is taker:
                del _TAKERS[engine]

    return withdraw


def taker_for(engine: Engine) -> Taker | None:
    """The taker rows written through ``engine`` are held for, if any."""
    return _TAKERS.get(engine) if _TAKERS else None


def note_written(session: Session, connection: Connection, taker: Taker, row: HandedRow) -> None:
    """``row`` was written as held by ``taker`` in ``session``'s transaction, on ``connection``:
    hand it over after the commit."""
    pending = session.info.get(_PENDING)
    if pending is None or pending.taker is not taker:
        if pending is not None:  # the taker changed within the transaction: the old one catches up
            pending.spoiled = True
            _settle(pending)
        pending = session.info[_PENDING] = _Pending(taker)
    pending.rows.append(row)
    pending.connections.add(connection)


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint's commit: the rows are not committed yet
    pending = session.info.pop(_PENDING, None)
    if pending is not None:
        if any(connection.in_transaction() for connection in pending.connections):
            # The session joined a transaction of its connection's and committed only its part:
            # nothing is committed yet. The relay's rounds take the rows once they are.
            pending.spoiled = True
        _settle(pending)


def _after_soft_rollback(session: Session, previous: SessionTransaction) -> None:
    pending = session.info.get(_PENDING)
    if pending is None:
        return
    if previous.nested:
        pending.spoiled = True  # the rows written inside the savepoint are gone; the others are not
    elif not session.in_transaction():
        del session.info[_PENDING]  # the whole transaction: none of its rows exists


def _settle(pending: _Pending) -> None:
    if pending.spoiled:
        pending.taker.catch_up()
    elif pending.rows:
        pending.taker.take(pending.rows)


_listening = False


def _listen() -> None:
    # Once per process, on the first offer: until then no session pays for the hooks.
    global _listening
    if not _listening:
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_soft_rollback", _after_soft_rollback)
        _listening = True
