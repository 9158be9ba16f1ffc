"""Exchanges and queues, derived from the contracts: nothing here names an event by hand.

For every (service, event) pair of ``SUBSCRIPTIONS`` there are three queues on RabbitMQ, named
after ``queue = queue_name(service, event)`` (``<service>.<routing key>``)::

    headshots.events (topic) --<routing key>--> <queue>          quorum, x-delivery-limit
                                                 | handler error: the consumer publishes a copy
    headshots.retry (direct) --<queue>--> <queue>.retry          x-message-ttl = RETRY_DELAY_MS
                                                 | expired: dead-lettered through
    (default exchange)       --<queue>--> <queue>                this queue only
                                                 | undecodable, Permanent, or out of attempts
    headshots.dead (direct)  --<queue>.dead--> <queue>.dead

A retry goes back through the default exchange with the queue's own name as routing key, so only
the consumer that failed sees it again, never the other subscribers of the event. The broker
dead-letters into the same ``.dead`` queue when a message exceeds ``x-delivery-limit``
redeliveries (a consumer that crashes on it again and again).

On ``memory://`` kombu has no queue arguments (no TTL, no dead-lettering, no delivery limit):
the same exchanges, the consumer queues and the ``.dead`` queues are declared as plain queues,
and the consumer runner does the delay and the counting itself (see consumer.py).

Gateway instances each get their own exclusive, auto-delete queue bound to ``GATEWAY_EVENTS``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kombu import Connection, Exchange, Queue, binding

from libs.contracts import (
    DEAD_LETTER_EXCHANGE,
    EXCHANGE,
    GATEWAY_EVENTS,
    RETRY_EXCHANGE,
    SUBSCRIPTIONS,
    EventType,
    queue_name,
)
from libs.messaging.broker import is_memory
from libs.settings import Settings

EVENTS = Exchange(EXCHANGE, type="topic", durable=True)
DEAD_LETTERS = Exchange(DEAD_LETTER_EXCHANGE, type="direct", durable=True)
RETRIES = Exchange(RETRY_EXCHANGE, type="direct", durable=True)

DEAD_SUFFIX = ".dead"
RETRY_SUFFIX = ".retry"


def dead_letter_queue_name(queue: str) -> str:
    return queue + DEAD_SUFFIX


def retry_queue_name(queue: str) -> str:
    return queue + RETRY_SUFFIX


def origin_of(dead_queue: str) -> str:
    """The consumer queue a dead-letter queue belongs to."""
    if not dead_queue.endswith(DEAD_SUFFIX):
        raise ValueError(f"{dead_queue!r} is not a dead-letter queue")
    return dead_queue.removesuffix(DEAD_SUFFIX)


# Quorum queues: replicated, durable, and they count redeliveries (x-delivery-count). The
# at-least-once dead-letter strategy (RabbitMQ >= 3.10) keeps a message in its queue until the
# dead-letter target confirms it; it requires the reject-publish overflow mode.
_QUORUM = {"x-queue-type": "quorum"}
_SAFE_DEAD_LETTERING = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}


@dataclass(frozen=True)
class ConsumerQueues:
    """The queues of one (service, event) pair."""

    service: str
    event: EventType
    main: Queue
    dead: Queue
    retry: Queue | None  # None on memory://, where the consumer runner delays retries itself

    @property
    def name(self) -> str:
        return str(self.main.name)

    def all(self) -> list[Queue]:
        return [q for q in (self.dead, self.retry, self.main) if q is not None]


def consumer_queues(service: str, event: EventType, settings: Settings) -> ConsumerQueues:
    name = queue_name(service, event)
    dead_name = dead_letter_queue_name(name)
    if is_memory(settings):
        return ConsumerQueues(
            service,
            event,
            main=Queue(name, EVENTS, routing_key=event.routing_key, durable=False),
            dead=Queue(dead_name, DEAD_LETTERS, routing_key=dead_name, durable=False),
            retry=None,
        )
    main_args: dict[str, Any] = {
        **_QUORUM,
        "x-delivery-limit": settings.DELIVERY_LIMIT,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": dead_name,
        **_SAFE_DEAD_LETTERING,
    }
    retry_args: dict[str, Any] = {
        **_QUORUM,
        "x-message-ttl": settings.RETRY_DELAY_MS,
        "x-dead-letter-exchange": "",  # the default exchange: routing key = queue name
        "x-dead-letter-routing-key": name,
        **_SAFE_DEAD_LETTERING,
    }
    return ConsumerQueues(
        service,
        event,
        main=Queue(name, EVENTS, routing_key=event.routing_key, durable=True, queue_arguments=main_args),
        dead=Queue(dead_name, DEAD_LETTERS, routing_key=dead_name, durable=True, queue_arguments=_QUORUM),
        retry=Queue(
            retry_queue_name(name), RETRIES, routing_key=name, durable=True, queue_arguments=retry_args
        ),
    )


def service_queues(service: str, events: Iterable[EventType], settings: Settings) -> list[ConsumerQueues]:
    subscribed = SUBSCRIPTIONS.get(service)
    if subscribed is None:
        raise ValueError(f"unknown service {service!r}: not in libs.contracts.SUBSCRIPTIONS")
    queues = []
    for event in events:
        if event not in subscribed:
            raise ValueError(f"{service} does not subscribe to {event} (libs.contracts.SUBSCRIPTIONS)")
        queues.append(consumer_queues(service, event, settings))
    return queues


def all_consumer_queues(settings: Settings, services: Iterable[str] | None = None) -> list[ConsumerQueues]:
    chosen = SUBSCRIPTIONS if services is None else {s: SUBSCRIPTIONS[s] for s in services}
    return [q for service, events in chosen.items() for q in service_queues(service, events, settings)]


def declare(connection: Connection, settings: Settings, services: Iterable[str] | None = None) -> None:
    """Declare the exchanges and the consumer queues (all services by default). Idempotent as
    long as every process runs with the same DELIVERY_LIMIT and RETRY_DELAY_MS: RabbitMQ refuses
    to redeclare a queue with other arguments (PRECONDITION_FAILED)."""
    channel = connection.default_channel
    declare_exchanges(channel)
    declare_queues(channel, all_consumer_queues(settings, services))


def declare_exchanges(channel: Any) -> None:
    """The three exchanges (idempotent). Publishing to one that does not exist closes the channel
    on RabbitMQ and silently drops the message on memory://."""
    for exchange in (EVENTS, DEAD_LETTERS, RETRIES):
        exchange(channel).declare()


def declare_queues(channel: Any, queues: Iterable[ConsumerQueues]) -> None:
    """Each consumer queue with its retry and dead-letter queues (idempotent)."""
    for q in queues:
        for queue in q.all():
            queue(channel).declare()


def gateway_queue(instance: str | None = None) -> Queue:
    """An exclusive, auto-delete queue for one gateway instance, bound to every gateway event.

    It lives as long as the instance's connection: every instance sees every event, and what a
    page missed while no instance listened is replayed from the outbox, not from the broker.
    """
    name = f"gateway.{instance or uuid.uuid4().hex}"
    bindings = [binding(EVENTS, routing_key=event.routing_key) for event in GATEWAY_EVENTS]
    return Queue(name, exchange=EVENTS, bindings=bindings, exclusive=True, auto_delete=True, durable=False)


def declare_gateway_queue(connection: Connection, instance: str | None = None) -> Queue:
    """Declare (and bind) a gateway instance's queue on ``connection``; consume it with kombu."""
    EVENTS(connection.default_channel).declare()
    queue = gateway_queue(instance)(connection.default_channel)
    queue.declare()
    return queue
