"""The consumer runner: decode with the contract, handle in a transaction, then ack.

    consumer = Consumer("review", {SESSION_SUBMITTED: handle_session_submitted}, db, settings,
                        deps={"mailer": mailer})
    consumer.start_in_thread()     # embedded mode: one thread per service
    ...
    consumer.stop()                # finishes the message in hand, then returns the others

    run_consumer_process(settings, "review", HANDLERS, deps)   # distributed mode (signals.py)

The messages already delivered (up to BATCH_MAX, never waited for) are handled in one
transaction, then acked together. For each, in order:

1. decode it with ``decode_message``: bad JSON, a wrong content type, an unknown type or a body
   that breaks its schema goes to the queue's dead-letter queue at once (never acked away);
2. claim them all: one ``INSERT INTO processed_messages ... ON CONFLICT DO NOTHING``; a message
   not inserted is a duplicate, acked with no effect;
3. scope the unit of work to the message's org (nothing loaded for another org stays visible);
4. in a savepoint, call the handler, injecting by parameter name ``uow``, ``publish`` (= ``uow.add_message``,
   the outbox) and the ``deps`` it asks for (all of them if it takes ``**kwargs``); if it
   raises, roll back to the savepoint and drop its claim: that message alone is retried or
   dead-lettered. The transaction's first handler runs without one (nothing but the claims is
   there yet): if it raises, the transaction is rolled back and the messages after it, none of
   which has run, are claimed and handled in a new one;
5. commit, THEN ack. Handlers never commit themselves.

A handler exception is retried after RETRY_DELAY_MS, up to DELIVERY_LIMIT attempts in all, then
dead-lettered; ``raise Permanent(...)`` dead-letters at once. Database outages (SQLAlchemy's
OperationalError / InterfaceError: connection lost, database locked) are retried without using up
an attempt. Retrying publishes a copy to the
queue's retry queue and acks the original, so the messages behind it keep flowing (no head-of-line
blocking). Attempts are counted in the ``x-attempts`` header plus RabbitMQ's ``x-delivery-count``
(redeliveries after a crash or a lost connection); the queue's ``x-delivery-limit`` is the broker's
own backstop for a message that kills its consumer every time.

On ``memory://`` the broker cannot delay or dead-letter, so the runner keeps delayed retries in
memory (released by its own loop, flushed back to the queue on stop) and publishes dead letters
itself: the observable behaviour is the same (memory.py).

The parts live in their own modules: injection.py (which keyword arguments a handler gets),
retries.py (the retry policy), deadletters.py (dead-lettering), memory.py (the memory://
emulation), heartbeat.py (the worker row and AMQP heartbeats during a handler), metrics.py,
signals.py (a consumer as a process of its own), headers.py (every header name).

Connection loss (broker restart, ``rabbitmqctl close_all_connections``, missed heartbeats) ends
the drain loop; the runner reconnects with backoff and consumes again. Unacked messages, including
one whose effect was committed just before the connection died, are redelivered by the broker and
found in processed_messages.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from amqp.exceptions import AMQPError
from kombu import Connection
from kombu import Consumer as KombuConsumer
from kombu.exceptions import KombuError
from kombu.message import Message as RawMessage
from sqlalchemy import String, Table, bindparam, column, delete, func, select, tuple_
from sqlalchemy import types as sql_types
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from libs.contracts import ContractError, EventType, Message, decode_message, prefetch_for
from libs.db import Database, ProcessedMessage, UnitOfWork, utcnow
from libs.db.direct import DirectStatement
from libs.db.tenancy import scope_session
from libs.messaging import metrics, retries
from libs.messaging.broker import is_memory, open_connection, release_quietly
from libs.messaging.deadletters import dead_letter
from libs.messaging.errors import MessagingError
from libs.messaging.headers import attempt_of, short_id
from libs.messaging.heartbeat import Heartbeat, Keepalive
from libs.messaging.held import HeldConnection
from libs.messaging.injection import RUNNER_PROVIDES, BoundHandler, Handler, injectables
from libs.messaging.memory import HeldRetries, give_back
from libs.messaging.publisher import JSON, Publisher
from libs.messaging.topology import ConsumerQueues, declare_exchanges, declare_queues, service_queues
from libs.settings import Settings

log = logging.getLogger("headshots.messaging.consumer")

# What a lost connection looks like: socket errors, AMQP connection/channel errors, kombu's own.
_BROKER_TROUBLE = (OSError, AMQPError, KombuError, MessagingError)

_PROCESSED: Table = ProcessedMessage.__table__  # type: ignore[assignment]

# PostgreSQL: a batch's claims in one statement whose text is the same for any batch size (so the
# driver prepares it once): the keys go in as one JSON text (psycopg's adaptation of two arrays
# cost more CPU than the whole rest of the statement), inserted in the statement's own order (two
# instances claiming the same messages lock their rows in the same order).
_KEYS = (
    func.json_to_recordset(bindparam("keys", type_=sql_types.JSON))
    .table_valued(column("consumer", String), column("message_id", String))
    .render_derived("k", with_types=True)
)
_CLAIM_MANY = (
    pg_insert(_PROCESSED)
    .from_select(
        ["consumer", "message_id", "processed_at"],
        select(
            _KEYS.c.consumer, _KEYS.c.message_id, bindparam("now", type_=_PROCESSED.c.processed_at.type)
        ).order_by(_KEYS.c.consumer, _KEYS.c.message_id),
    )
    .on_conflict_do_nothing()
    .returning(_PROCESSED.c.consumer, _PROCESSED.c.message_id)
)

DRAIN_SECONDS = 0.25  # how long one drain waits: bounds how late stop() and heartbeats are seen
MAX_BACKOFF_SECONDS = 10.0
# Most messages handled in one transaction: what is already delivered (up to the prefetch of each
# queue) is taken together, never waited for.
BATCH_MAX = 50


@dataclass
class _Delivery:
    queues: ConsumerQueues
    raw: RawMessage
    received: float = field(default_factory=time.monotonic)
    attempt: int = 1
    message: Message | None = None


class Consumer:
    """Consumes one service's queues (one per event of ``handlers``) until :meth:`stop`."""

    def __init__(
        self,
        service: str,
        handlers: Mapping[EventType, Handler],
        db: Database,
        settings: Settings,
        deps: Mapping[str, Any] | None = None,
    ) -> None:
        self.service = service
        self.db = db
        self.settings = settings
        self.deps = dict(deps or {})
        self.queues = service_queues(service, handlers, settings)
        available = {*RUNNER_PROVIDES, *self.deps}
        self._handlers = {q.name: BoundHandler.of(handlers[q.event], available) for q in self.queues}
        self.prefetch = prefetch_for(service)
        self.memory = is_memory(settings)
        self.stats: Counter[str] = Counter()  # handled, duplicate, retried, dead_lettered, reconnects
        self._publisher = Publisher(settings, name=f"{service} consumer (retries and dead letters)")
        self._held = HeldRetries(self._publisher) if self.memory else None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._cancelling = False
        self.heartbeat = Heartbeat(service, db, settings.HEARTBEAT_SECONDS)
        self.current_session: str | None = None  # shown on the ops Workers page
        self._conn: Connection | None = None  # the consuming connection, for the keepalive
        self._keepalive = Keepalive(settings.HEARTBEAT, service)
        self._dbconn = HeldConnection(db)  # no pool checkout (and pre-ping) per batch
        self._delivered: list[_Delivery] = []
        # SQLite: pysqlite's transaction handling makes savepoints unreliable (the release of the
        # first one commits), so the embedded mode handles one message per transaction.
        self._batch_max = BATCH_MAX if db.dialect == "postgresql" else 1
        self._claim_first = db.dialect == "postgresql"  # row locks: claiming blocks no one else
        # PostgreSQL: the batch's claims on the driver's cursor, compiled once (libs/db/direct.py).
        # SQLite (a batch of one): the same INSERT ... ON CONFLICT DO NOTHING RETURNING in Core.
        self._claim_many = DirectStatement(_CLAIM_MANY, db.engine.dialect) if self._claim_first else None
        self._claim_one = (
            sqlite_insert(_PROCESSED)
            .on_conflict_do_nothing()
            .returning(_PROCESSED.c.consumer, _PROCESSED.c.message_id)
        )

    # --- lifecycle ---------------------------------------------------------------------------------
    def run(self) -> None:
        """Consume until :meth:`stop`, reconnecting with backoff after any connection loss."""
        backoff = 0.2
        log.info("%s consumer starting on %s", self.service, ", ".join(q.name for q in self.queues))
        beats = threading.Thread(
            target=self.heartbeat.beat_until,
            args=(self._stop, self._counts),
            name=f"heartbeat-{self.service}",
            daemon=True,
        )
        beats.start()
        self._keepalive.start()
        try:
            while not self._stop.is_set():
                try:
                    self._consume()
                except Exception as exc:
                    if self._stop.is_set():
                        break
                    if self._ready.is_set():
                        backoff = 0.2  # it was consuming: the loss is fresh, try again soon
                    self._ready.clear()
                    self.stats["reconnects"] += 1
                    if isinstance(exc, _BROKER_TROUBLE):
                        log.warning(
                            "%s consumer lost its connection (%r); reconnecting in %.1f s",
                            self.service,
                            exc,
                            backoff,
                        )
                    else:  # a bug, not the network: say so loudly, but keep the worker alive
                        log.exception("%s consumer failed; starting again in %.1f s", self.service, backoff)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        finally:
            self._ready.clear()
            if self._held is not None:
                # Pending retries go back now rather than be lost with this process' memory.
                self._held.flush()
            self._publisher.close()
            self._keepalive.close()
            self._dbconn.close()
            log.info("%s consumer stopped", self.service)

    def _counts(self) -> tuple[int, int, str | None]:
        handled = self.stats["handled"] + self.stats["duplicate"]
        failed = self.stats[retries.RETRY] + self.stats[retries.DEAD]
        return handled, failed, self.current_session

    def start_in_thread(self) -> threading.Thread:
        """Run in a daemon thread (embedded mode); returns the thread."""
        self._thread = threading.Thread(target=self.run, name=f"consumer-{self.service}", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, wait: float | None = None) -> None:
        """Finish the message in hand, then stop. ``wait``: seconds to join the thread, if any."""
        self._stop.set()
        if wait is not None and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(wait)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wait_ready(self, timeout: float) -> bool:
        """True once the queues are declared and consumed (again, after a reconnect)."""
        return self._ready.wait(timeout)

    # --- the drain loop ----------------------------------------------------------------------------
    def _consume(self) -> None:
        conn = open_connection(self.settings, name=f"{self.service} consumer")
        self._cancelling = False
        self._conn = conn
        try:
            channel = conn.channel()
            declare_exchanges(conn.default_channel)
            declare_queues(conn.default_channel, self.queues)
            consumers = [
                KombuConsumer(
                    channel,
                    queues=[q.main],
                    on_message=partial(self._on_message, q),
                    accept=["json"],  # nothing but JSON; pickle never
                    on_decode_error=partial(self._on_decode_error, q),
                    prefetch_count=self.prefetch,  # per queue (quorum queues have no global QoS)
                )
                for q in self.queues
            ]
            for c in consumers:
                c.consume()
            self._ready.set()
            while not self._stop.is_set():
                if self._held is not None:
                    self._held.release_due()
                # A timeout means nothing arrived: a chance to check stop() and heartbeats.
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=DRAIN_SECONDS)
                    # Take what is already delivered, without waiting, into the same batch.
                    while len(self._delivered) < self._batch_max:
                        conn.drain_events(timeout=0)
                self._handle_delivered()
                self._dbconn.end_quiet_transaction()
                conn.heartbeat_check()
                self._publisher.heartbeat_check()
            # Stop deliveries first; unacked prefetched messages go back when the channel closes.
            # py-amqp dispatches deliveries that arrive while it waits for cancel-ok: those are
            # left unacked (see _on_message), not handled after stop().
            self._cancelling = True
            for c in consumers:
                c.cancel()
        finally:
            self._ready.clear()
            self._give_back(self._delivered)
            self._delivered = []
            release_quietly(conn)

    # --- a batch of messages -----------------------------------------------------------------------
    def _on_decode_error(self, queues: ConsumerQueues, raw: RawMessage, exc: Exception) -> None:
        # Only reached if kombu itself decodes (it does not: on_message takes the raw body), but
        # kombu's default here would ack, i.e. drop, the message.
        self._dead_letter(queues, raw, f"undecodable: {exc}", attempt_of(raw))

    def _on_message(self, queues: ConsumerQueues, raw: RawMessage) -> None:
        if self._cancelling:
            self._give_back([_Delivery(queues, raw)])
            return  # RabbitMQ requeues it when the channel closes
        self._delivered.append(_Delivery(queues, raw))

    def _give_back(self, deliveries: list[_Delivery]) -> None:
        if self.memory:  # nothing else would give them back to their queue: do it now
            for d in deliveries:
                give_back(self._publisher, d.queues.name, d.raw)

    def _handle_delivered(self) -> None:
        deliveries, self._delivered = self._delivered, []
        if not deliveries:
            return
        try:
            ready = [d for d in deliveries if self._admit(d)]
            self._handle(ready)
        except BaseException:
            # On RabbitMQ unacked messages go back to their queue when the connection closes.
            self._give_back(deliveries)
            raise

    def _admit(self, d: _Delivery) -> bool:
        """Decode and check one delivery; dead-letter it (False) if it can never be handled."""
        d.attempt = attempt_of(d.raw)
        try:
            d.message = self._decode(d.queues, d.raw)
        except ContractError as exc:
            self._dead_letter(d.queues, d.raw, f"undecodable: {exc}", d.attempt)
            return False
        verdict = retries.out_of_attempts(d.attempt, self.settings.DELIVERY_LIMIT)
        if verdict is not None:
            self._dead_letter(d.queues, d.raw, verdict.reason, d.attempt)
            return False
        return True

    def _handle(self, ready: list[_Delivery]) -> None:
        """Handle the messages in one transaction, then ack them together. Each runs in a
        savepoint of its own (the first one in the transaction itself): a failing message is
        rolled back alone (and retried or dead-lettered after the commit), never taking its
        neighbours' effects with it."""
        if not ready:
            return
        try:
            results = self._process(ready)
        except Exception as exc:
            # The transaction itself failed (database down, commit refused): nothing was kept.
            for d in ready:
                self._failed(d, exc)
            return
        finally:
            self.current_session = None
        # One ack for the whole batch when every message of it is acked and nothing else is
        # outstanding on the channel (the batch is all that was delivered); otherwise one each.
        together = (
            not self.memory  # memory:// has no multiple ack
            and len(results) == len(ready)
            and not any(isinstance(result, Exception) for _d, result in results)
        )
        if together:
            ready[-1].raw.ack(multiple=True)
        for d, result in results:
            if isinstance(result, Exception):
                self._failed(d, result)
                continue
            if not together:
                d.raw.ack()
            seconds = time.monotonic() - d.received
            self.stats[result] += 1
            metrics.record(d.queues.name, result, seconds)
            log.info(
                "%s %s %s in %.0f ms",
                d.queues.name,
                result,
                short_id(d.raw.properties.get("message_id")),
                seconds * 1000,
            )
        # Stopping in the middle of a batch: the rest was not handled and goes back.
        self._give_back([d for d in ready[len(results) :]])
        if len(ready) == 1:
            # A lone message, not a stream: the next batch's BEGIN now, after the acks, off the
            # path of the next lone message (PostgreSQL).
            self._dbconn.begin_ahead()

    def _failed(self, d: _Delivery, exc: Exception) -> None:
        verdict = retries.after_failure(exc, d.attempt, self.settings.DELIVERY_LIMIT)
        if verdict.outcome == retries.DEAD:
            self._dead_letter(d.queues, d.raw, verdict.reason, d.attempt)
        else:
            self._retry(d.queues, d.raw, exc, d.attempt, counted=verdict.counted)

    def _decode(self, queues: ConsumerQueues, raw: RawMessage) -> Message:
        if raw.content_type != JSON:
            raise ContractError(f"content type {raw.content_type!r} is not {JSON}")
        message = decode_message(raw.body)
        if message.event is not queues.event:
            raise ContractError(f"a {message.event} message does not belong in {queues.name}")
        return message

    def _process(self, ready: list[_Delivery]) -> list[tuple[_Delivery, str | Exception]]:
        """Claim the messages, run the handlers of the ones claimed, commit it all; 'handled',
        'duplicate' or the handler's exception for each message taken (after stop() only the one
        in hand is taken)."""
        if not self._claim_first:
            return self._process_claiming_last(ready[0])
        alone = len(ready) == 1
        results: list[tuple[_Delivery, str | Exception]] = []
        rest: list[_Delivery] | None = None  # left after the first handler failed: a new transaction
        first = ready[0].message
        assert first is not None
        with (
            self._dbconn.session(org_id=first.org_id) as db_session,
            self._keepalive.busy(None if self.memory else self._conn),
        ):
            uow = UnitOfWork(db_session)
            claimed = self._claim(db_session, ready)
            released: list[tuple[str, str]] = []  # claims of messages that failed: not processed
            ran = False  # whether a handler has run in this transaction
            for index, d in enumerate(ready):
                if results and self._stop.is_set():
                    break  # finish the message in hand, leave the rest
                message = d.message
                assert message is not None
                key = (d.queues.name, message.message_id)
                if key not in claimed:  # handled before, or a second copy in this batch
                    results.append((d, "duplicate"))
                    continue
                claimed.discard(key)
                # Each message sees its own organization only, and nothing loaded for another.
                scope_session(db_session, message.org_id)
                self.current_session = message.session_id
                # The transaction's first handler needs no savepoint: nothing but the claims is
                # there yet. If it fails, the whole transaction is rolled back and the messages
                # after it are claimed again in a new one (none of them has run).
                savepoint = db_session.begin_nested() if ran else None
                ran = True
                try:
                    self._handlers[d.queues.name](message, injectables(uow, self.deps))
                    if not alone:  # alone, the commit flushes what the handler left
                        db_session.flush()
                    if savepoint is not None:
                        savepoint.commit()
                except (OperationalError, InterfaceError):
                    raise  # the database, not the message: the whole batch is retried
                except Exception as exc:
                    results.append((d, exc))
                    if savepoint is None:
                        db_session.rollback()
                        rest = ready[index + 1 :]
                        break
                    savepoint.rollback()
                    released.append(key)
                else:
                    results.append((d, "handled"))
                if not alone:
                    db_session.expunge_all()
            if rest is None:
                released.extend(claimed)  # claimed but left (stopping): they go back to the queue
                if released:
                    db_session.execute(
                        delete(_PROCESSED).where(
                            tuple_(_PROCESSED.c.consumer, _PROCESSED.c.message_id).in_(released)
                        )
                    )
                uow.commit()
        if rest and not self._stop.is_set():
            results.extend(self._process(rest))
        return results

    def _process_claiming_last(self, d: _Delivery) -> list[tuple[_Delivery, str | Exception]]:
        """SQLite: a write takes the database's only write lock until the commit, so claiming
        first would make every other writer (worker heartbeats, the progress commits of a long
        handler, other services) wait for the whole handler. Look first, claim last."""
        message = d.message
        assert message is not None
        key = (d.queues.name, message.message_id)
        with self._dbconn.session(org_id=message.org_id) as db_session, self._keepalive.busy(None):
            seen = select(_PROCESSED.c.message_id).where(
                _PROCESSED.c.consumer == key[0], _PROCESSED.c.message_id == key[1]
            )
            if db_session.connection().execute(seen).first() is not None:
                return [(d, "duplicate")]
            uow = UnitOfWork(db_session)
            self.current_session = message.session_id
            self._handlers[d.queues.name](message, injectables(uow, self.deps))
            if not self._claim(db_session, [d]):
                return [(d, "duplicate")]  # another instance committed it meanwhile: roll back ours
            uow.commit()
        return [(d, "handled")]

    def _claim(self, db_session: Session, ready: list[_Delivery]) -> set[tuple[str, str]]:
        """Insert the processed-message rows of the batch in one statement, ON CONFLICT DO
        NOTHING; return the keys inserted. A key already there is a duplicate; one being inserted
        by another instance makes this wait for its commit, then it is a duplicate too."""
        keys = {(d.queues.name, d.message.message_id) for d in ready if d.message is not None}
        conn = db_session.connection()
        if self._claim_many is not None:
            params = {
                "keys": json.dumps([{"consumer": c, "message_id": m} for c, m in keys]),
                "now": utcnow(),
            }
            return set(self._claim_many.execute(conn, params).fetchall())
        rows = [{"consumer": c, "message_id": m, "processed_at": utcnow()} for c, m in keys]
        return {(str(c), str(m)) for c, m in conn.execute(self._claim_one, rows)}

    # --- outcomes other than handled ---------------------------------------------------------------
    def _retry(
        self, queues: ConsumerQueues, raw: RawMessage, exc: Exception, attempt: int, *, counted: bool = True
    ) -> None:
        retries.retry(
            self._publisher, self._held, self.settings, queues.name, raw, exc, attempt, counted=counted
        )
        self.stats[retries.RETRY] += 1
        metrics.record(queues.name, retries.RETRY)

    def _dead_letter(self, queues: ConsumerQueues, raw: RawMessage, reason: str, attempt: int) -> None:
        dead_letter(self._publisher, queues.name, raw, reason, attempt)
        self.stats[retries.DEAD] += 1
        metrics.record(queues.name, retries.DEAD)
