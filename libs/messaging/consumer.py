"""The consumer runner: decode with the contract, handle in a transaction, then ack.

    consumer = Consumer("review", {SESSION_SUBMITTED: handle_session_submitted}, db, settings,
                        deps={"mailer": mailer})
    consumer.start_in_thread()     # embedded mode: one thread per service
    ...
    consumer.stop()                # finishes the message in hand, then returns the others

    run_consumer_process(settings, "review", HANDLERS, deps)   # distributed mode: SIGTERM stops it

For each message, in order:

1. decode it with ``decode_message``: bad JSON, a wrong content type, an unknown type or a body
   that breaks its schema goes to the queue's dead-letter queue at once (never acked away);
2. open a unit of work scoped to the message's org (``db.uow(org_id=message.org_id)``);
3. if a ``ProcessedMessage(consumer=<queue>, message_id)`` row exists, ack and stop: a duplicate
   has one effect;
4. call the handler, injecting by parameter name ``uow``, ``publish`` (= ``uow.add_message``,
   the outbox) and the ``deps`` it asks for (all of them if it takes ``**kwargs``);
5. add the ProcessedMessage row and commit, THEN ack. Handlers never commit themselves.

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
itself: the observable behaviour is the same.

Connection loss (broker restart, ``rabbitmqctl close_all_connections``, missed heartbeats) ends
the drain loop; the runner reconnects with backoff and consumes again. Unacked messages, including
one whose effect was committed just before the connection died, are redelivered by the broker and
found in processed_messages.
"""

from __future__ import annotations

import contextlib
import heapq
import inspect
import itertools
import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from amqp.exceptions import AMQPError
from kombu import Connection
from kombu import Consumer as KombuConsumer
from kombu.exceptions import KombuError
from kombu.message import Message as RawMessage
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from libs.contracts import (
    DEAD_LETTER_EXCHANGE,
    RETRY_EXCHANGE,
    ContractError,
    EventType,
    Message,
    decode_message,
    prefetch_for,
)
from libs.db import Database, ProcessedMessage, UnitOfWork
from libs.messaging.broker import is_memory, open_connection, release_quietly
from libs.messaging.errors import MessagingError, Permanent
from libs.messaging.heartbeat import Heartbeat
from libs.messaging.metrics import HANDLER_SECONDS, MESSAGES
from libs.messaging.publisher import JSON, Publisher
from libs.messaging.topology import (
    DEAD_LETTERS,
    EVENTS,
    ConsumerQueues,
    dead_letter_queue_name,
    service_queues,
)
from libs.settings import Settings

log = logging.getLogger("headshots.messaging.consumer")

Handler = Callable[..., Any]

ATTEMPTS_HEADER = "x-attempts"  # attempts made before this copy was published (retries, crashes)
DEAD_REASON_HEADER = "x-dead-reason"
DEAD_QUEUE_HEADER = "x-dead-queue"
DEAD_AT_HEADER = "x-dead-at"
LAST_ERROR_HEADER = "x-last-error"
BROKER_COUNT_HEADER = "x-delivery-count"  # set by quorum queues on every delivery

# What a lost connection looks like: socket errors, AMQP connection/channel errors, kombu's own.
_BROKER_TROUBLE = (OSError, AMQPError, KombuError, MessagingError)

_PROCESSED = ProcessedMessage.__table__

DRAIN_SECONDS = 0.25  # how long one drain waits: bounds how late stop() and heartbeats are seen
MAX_BACKOFF_SECONDS = 10.0


@dataclass
class _Bound:
    """A handler with the names of the keyword arguments it takes."""

    handler: Handler
    wants: frozenset[str]
    takes_all: bool

    @classmethod
    def of(cls, handler: Handler, available: set[str]) -> _Bound:
        params = list(inspect.signature(handler).parameters.values())[1:]  # the first is the message
        takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        named = [p for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
        missing = [p.name for p in named if p.default is p.empty and p.name not in available]
        if missing:
            raise TypeError(
                f"{getattr(handler, '__name__', handler)} needs {missing}; deps give {sorted(available)}"
            )
        return cls(handler, frozenset(p.name for p in named), takes_all)

    def __call__(self, message: Message, available: Mapping[str, Any]) -> Any:
        kwargs = (
            dict(available) if self.takes_all else {k: v for k, v in available.items() if k in self.wants}
        )
        return self.handler(message, **kwargs)


@dataclass(order=True)
class _Delayed:
    """A retry held by the runner on memory:// until it is due."""

    due: float
    seq: int
    queue: str = field(compare=False)
    raw: RawMessage = field(compare=False)
    headers: dict[str, Any] = field(compare=False)


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
        available = {"uow", "publish", *self.deps}
        self._handlers = {q.name: _Bound.of(handlers[q.event], available) for q in self.queues}
        self.prefetch = prefetch_for(service)
        self.memory = is_memory(settings)
        self.stats: Counter[str] = Counter()  # handled, duplicate, retried, dead_lettered, reconnects
        self._publisher = Publisher(settings, name=f"{service} consumer (retries and dead letters)")
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._delayed: list[_Delayed] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._cancelling = False
        self.heartbeat = Heartbeat(service, db, settings.HEARTBEAT_SECONDS)
        self.current_session: str | None = None  # shown on the ops Workers page

    # --- lifecycle ---------------------------------------------------------------------------------
    def run(self) -> None:
        """Consume until :meth:`stop`, reconnecting with backoff after any connection loss."""
        backoff = 0.2
        log.info("%s consumer starting on %s", self.service, ", ".join(q.name for q in self.queues))
        beats = threading.Thread(
            target=self._beat_until_stopped, name=f"heartbeat-{self.service}", daemon=True
        )
        beats.start()
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
            self._flush_delayed()
            self._publisher.close()
            log.info("%s consumer stopped", self.service)

    def _beat_until_stopped(self) -> None:
        """Its own thread, so a long handler (generation renders for minutes) still beats."""
        if self.settings.HEARTBEAT_SECONDS <= 0:
            return
        while True:
            self.heartbeat.beat(
                handled=self.stats["handled"] + self.stats["duplicate"],
                failed=self.stats["retried"] + self.stats["dead_lettered"],
                current=self.current_session,
            )
            if self._stop.wait(self.settings.HEARTBEAT_SECONDS):
                return

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

    def wait_ready(self, timeout: float) -> bool:
        """True once the queues are declared and consumed (again, after a reconnect)."""
        return self._ready.wait(timeout)

    # --- the drain loop ----------------------------------------------------------------------------
    def _consume(self) -> None:
        conn = open_connection(self.settings, name=f"{self.service} consumer")
        self._cancelling = False
        try:
            channel = conn.channel()
            self._declare(conn)
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
                self._release_due()
                # A timeout means nothing arrived: a chance to check stop() and heartbeats.
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=DRAIN_SECONDS)
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
            release_quietly(conn)

    def _declare(self, conn: Connection) -> None:
        channel = conn.default_channel
        for exchange in (EVENTS, DEAD_LETTERS):
            exchange(channel).declare()
        for q in self.queues:
            for queue in q.all():
                queue(channel).declare()

    # --- one message -------------------------------------------------------------------------------
    def _on_decode_error(self, queues: ConsumerQueues, raw: RawMessage, exc: Exception) -> None:
        # Only reached if kombu itself decodes (it does not: on_message takes the raw body), but
        # kombu's default here would ack, i.e. drop, the message.
        self._dead_letter(queues, raw, f"undecodable: {exc}", _attempt(raw))

    def _on_message(self, queues: ConsumerQueues, raw: RawMessage) -> None:
        if self._cancelling:
            if self.memory:  # nothing would give it back to the queue: do it now
                self._republish(raw, exchange="", routing_key=queues.name, headers=_copy_headers(raw))
                raw.ack()
            return  # RabbitMQ requeues it when the channel closes
        try:
            self._handle(queues, raw)
        except BaseException:
            # On RabbitMQ an unacked message goes back to its queue when the connection closes.
            # kombu's memory transport drops it instead: put it back on this queue ourselves.
            if self.memory and not raw.acknowledged:
                self._republish(raw, exchange="", routing_key=queues.name, headers=_copy_headers(raw))
                raw.ack()
            raise

    def _handle(self, queues: ConsumerQueues, raw: RawMessage) -> None:
        started = time.monotonic()
        attempt = _attempt(raw)
        try:
            message = self._decode(queues, raw)
        except ContractError as exc:
            self._dead_letter(queues, raw, f"undecodable: {exc}", attempt)
            return
        if attempt > self.settings.DELIVERY_LIMIT:
            # Earlier deliveries ended without an outcome (the consumer died or lost its connection).
            self._dead_letter(queues, raw, f"delivered {attempt} times without success", attempt)
            return
        self.current_session = message.session_id
        try:
            outcome = self._process(queues, message)
        except Permanent as exc:
            self._dead_letter(queues, raw, f"Permanent: {exc}", attempt)
        except (OperationalError, InterfaceError) as exc:
            # The database is down or locked: not this message's fault, so the attempt is not
            # counted (an outage longer than DELIVERY_LIMIT retries must not dead-letter everything).
            self._retry(queues, raw, exc, attempt, counted=False)
        except Exception as exc:
            if attempt >= self.settings.DELIVERY_LIMIT:
                self._dead_letter(queues, raw, f"failed {attempt} times, last: {exc!r}", attempt)
            else:
                self._retry(queues, raw, exc, attempt)
        else:
            raw.ack()
            self.stats[outcome] += 1
            MESSAGES.labels(queues.name, outcome).inc()
            HANDLER_SECONDS.labels(queues.name).observe(time.monotonic() - started)
            ms = (time.monotonic() - started) * 1000
            log.info("%s %s %s in %.0f ms", queues.name, outcome, _short(message.message_id), ms)
        finally:
            self.current_session = None

    def _decode(self, queues: ConsumerQueues, raw: RawMessage) -> Message:
        if raw.content_type != JSON:
            raise ContractError(f"content type {raw.content_type!r} is not {JSON}")
        message = decode_message(raw.body)
        if message.event is not queues.event:
            raise ContractError(f"a {message.event} message does not belong in {queues.name}")
        return message

    def _process(self, queues: ConsumerQueues, message: Message) -> str:
        """Run the handler and record the message in one transaction; 'handled' or 'duplicate'."""
        key = (queues.name, message.message_id)
        with self.db.uow(org_id=message.org_id) as uow:
            if self._seen_in(uow.session, key):
                return "duplicate"
            self._handlers[queues.name](message, self._injectables(uow))
            uow.session.add(ProcessedMessage(consumer=queues.name, message_id=message.message_id))
            try:
                uow.commit()
            except IntegrityError:
                # Another instance handled the same message concurrently and committed first.
                uow.rollback()
                if self._already_processed(key):
                    return "duplicate"
                raise
        return "handled"

    def _injectables(self, uow: UnitOfWork) -> dict[str, Any]:
        return {"uow": uow, "publish": uow.add_message, **self.deps}

    def _already_processed(self, key: tuple[str, str]) -> bool:
        with self.db.session(all_orgs=True) as session:
            return self._seen_in(session, key)

    @staticmethod
    def _seen_in(session: Session, key: tuple[str, str]) -> bool:
        # A Core query on the session's transaction: same answer as session.get(), at a fraction
        # of the ORM's CPU cost, which matters on the per-message path.
        consumer, message_id = key
        query = select(_PROCESSED.c.message_id).where(
            _PROCESSED.c.consumer == consumer, _PROCESSED.c.message_id == message_id
        )
        return session.connection().execute(query).first() is not None

    # --- retry and dead-letter ---------------------------------------------------------------------
    def _retry(
        self, queues: ConsumerQueues, raw: RawMessage, exc: Exception, attempt: int, *, counted: bool = True
    ) -> None:
        headers = _copy_headers(raw)
        headers[ATTEMPTS_HEADER] = attempt if counted else attempt - 1
        headers[LAST_ERROR_HEADER] = _clip(repr(exc))
        if self.memory:
            due = time.monotonic() + self.settings.RETRY_DELAY_MS / 1000
            heapq.heappush(self._delayed, _Delayed(due, next(self._seq), queues.name, raw, headers))
        else:
            # The retry queue holds it for RETRY_DELAY_MS, then dead-letters it to this queue only.
            self._republish(raw, exchange=RETRY_EXCHANGE, routing_key=queues.name, headers=headers)
        raw.ack()
        self.stats["retried"] += 1
        MESSAGES.labels(queues.name, "retried").inc()
        log.warning(
            "%s %s failed (%s), retrying in %d ms: %r",
            queues.name,
            _short(raw.properties.get("message_id")),
            f"attempt {attempt} of {self.settings.DELIVERY_LIMIT}"
            if counted
            else "database unavailable, not counted",
            self.settings.RETRY_DELAY_MS,
            exc,
        )

    def _dead_letter(self, queues: ConsumerQueues, raw: RawMessage, reason: str, attempt: int) -> None:
        headers = _copy_headers(raw)
        headers.update(
            {
                ATTEMPTS_HEADER: attempt,
                DEAD_REASON_HEADER: _clip(reason),
                DEAD_QUEUE_HEADER: queues.name,
                DEAD_AT_HEADER: datetime.now(UTC).isoformat(),
            }
        )
        dead = dead_letter_queue_name(queues.name)
        # Published (and confirmed) before the ack: a crash in between leaves the original to be
        # redelivered, never a message in neither queue.
        self._republish(raw, exchange=DEAD_LETTER_EXCHANGE, routing_key=dead, headers=headers)
        raw.ack()
        self.stats["dead_lettered"] += 1
        MESSAGES.labels(queues.name, "dead_lettered").inc()
        log.warning(
            "%s %s dead-lettered to %s: %s",
            queues.name,
            _short(raw.properties.get("message_id")),
            dead,
            reason,
        )

    def _republish(
        self, raw: RawMessage, *, exchange: str, routing_key: str, headers: dict[str, Any]
    ) -> None:
        self._publisher.publish_raw(
            raw.body,
            exchange=exchange,
            routing_key=routing_key,
            message_id=raw.properties.get("message_id"),
            headers=headers,
            content_type=raw.content_type,
            content_encoding=raw.content_encoding,
            type=raw.properties.get("type"),
        )

    def _release_due(self) -> None:
        """memory:// only: put retries whose delay is over back on their queue."""
        now = time.monotonic()
        while self._delayed and self._delayed[0].due <= now:
            self._release(heapq.heappop(self._delayed))

    def _flush_delayed(self) -> None:
        # Stopping: release pending retries early rather than lose them with this process' memory.
        while self._delayed:
            self._release(heapq.heappop(self._delayed))

    def _release(self, delayed: _Delayed) -> None:
        self._republish(delayed.raw, exchange="", routing_key=delayed.queue, headers=delayed.headers)


def _attempt(raw: RawMessage) -> int:
    """This delivery's attempt number: earlier attempts of this copy + broker redeliveries + 1."""
    headers = raw.headers or {}
    try:
        return int(headers.get(ATTEMPTS_HEADER, 0)) + int(headers.get(BROKER_COUNT_HEADER, 0)) + 1
    except (TypeError, ValueError):
        return 1


def _copy_headers(raw: RawMessage) -> dict[str, Any]:
    # The broker's count belongs to the copy being acked; the new copy starts from x-attempts.
    return {k: v for k, v in (raw.headers or {}).items() if k != BROKER_COUNT_HEADER}


def _short(message_id: str | None) -> str:
    return f"{message_id[:8]}…" if message_id else "(no message_id)"


def _clip(text: str, limit: int = 1000) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_consumer_process(
    settings: Settings,
    service: str,
    handlers: Mapping[EventType, Handler],
    deps: Mapping[str, Any] | None = None,
    db: Database | None = None,
) -> Consumer:
    """Run one service's consumer in this process' main thread until SIGTERM or SIGINT, which
    finish the message in hand and return (distributed mode: ``python -m services.<name>``)."""
    consumer = Consumer(service, handlers, db or Database(settings.database_url), settings, deps)

    def _stop(signum: int, _frame: Any) -> None:
        log.info("%s consumer got %s, finishing the message in hand", service, signal.Signals(signum).name)
        consumer.stop()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        consumer.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return consumer
