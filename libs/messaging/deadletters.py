"""Dead letters: how the consumer sends one, and how ops look at them, replay or discard them.

    dead_letter(publisher, "review.<key>", raw, "Permanent: no such session", attempt=1)   # consumer

    queue = dead_letter_queue_name(queue_name("review", SESSION_SUBMITTED))
    for dead in list_dead_letters(settings, queue):
        print(dead.message_id, dead.type, dead.reason)
    replay_dead_letters(settings, queue, message_id="4f7c…")   # one
    replay_dead_letters(settings, queue)                       # all
    discard_dead_letters(settings, queue, message_id="4f7c…")

A queue may be named by its dead-letter name or by the consumer queue it belongs to. Replay
publishes the message, unchanged, to its consumer queue only (default exchange, queue name as
routing key) with its attempt count reset, then removes it from the dead-letter queue. Looking
never removes anything: messages are taken without ack and returned.

From a shell on RabbitMQ: ``rabbitmqctl list_queues -p VHOST name messages | grep dead``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kombu import Connection, Queue
from kombu.message import Message as RawMessage

from libs.contracts import DEAD_LETTER_EXCHANGE
from libs.messaging.broker import open_connection
from libs.messaging.headers import (
    ATTEMPTS_HEADER,
    BROKER_COUNT_HEADER,
    BROKER_DEATH_HEADERS,
    DEAD_AT_HEADER,
    DEAD_QUEUE_HEADER,
    DEAD_REASON_HEADER,
    LAST_ERROR_HEADER,
    clip,
    copy_headers,
    short_id,
)
from libs.messaging.publisher import Publisher
from libs.messaging.topology import DEAD_SUFFIX, all_consumer_queues, dead_letter_queue_name, origin_of
from libs.settings import Settings

log = logging.getLogger("headshots.messaging.consumer")

DEFAULT_LIMIT = 1000


def dead_letter(publisher: Publisher, queue: str, raw: RawMessage, reason: str, attempt: int) -> None:
    """Move a message of consumer queue ``queue`` to its dead-letter queue: published (and
    confirmed) before the ack, so a crash in between leaves the original to be redelivered, never
    a message in neither queue."""
    headers = copy_headers(raw)
    headers.update(
        {
            ATTEMPTS_HEADER: attempt,
            DEAD_REASON_HEADER: clip(reason),
            DEAD_QUEUE_HEADER: queue,
            DEAD_AT_HEADER: datetime.now(UTC).isoformat(),
        }
    )
    dead = dead_letter_queue_name(queue)
    publisher.republish(raw, exchange=DEAD_LETTER_EXCHANGE, routing_key=dead, headers=headers)
    raw.ack()
    log.warning(
        "%s %s dead-lettered to %s: %s", queue, short_id(raw.properties.get("message_id")), dead, reason
    )


@dataclass(frozen=True)
class DeadLetter:
    queue: str  # the dead-letter queue
    origin: str  # the consumer queue it came from (and goes back to on replay)
    message_id: str | None
    type: str | None
    reason: str
    attempts: int | None
    dead_at: str | None
    body: str
    headers: dict[str, Any] = field(repr=False)


def dead_letter_queues(settings: Settings) -> list[str]:
    return [q.dead.name for q in all_consumer_queues(settings)]


def queue_depths(settings: Settings) -> dict[str, int]:
    """Ready messages in every consumer queue and dead-letter queue (ops dashboard)."""
    depths: dict[str, int] = {}
    with _connection(settings) as conn:
        channel = conn.channel()
        for q in all_consumer_queues(settings):
            for queue in (q.main, q.dead):
                try:
                    _, count, _ = queue(channel).queue_declare(passive=True)
                except Exception:  # not declared yet: RabbitMQ closes the channel, open another
                    channel = conn.channel()
                    count = 0
                depths[str(queue.name)] = int(count)
    return depths


def list_dead_letters(settings: Settings, queue: str, limit: int = 100) -> list[DeadLetter]:
    dead = _dead_name(queue)
    with _taken(settings, dead, limit) as taken:
        return [_describe(dead, raw) for raw in taken]


def replay_dead_letters(settings: Settings, queue: str, message_id: str | None = None) -> int:
    """Send dead letters (all, or the one with ``message_id``) back to their consumer queue."""
    dead = _dead_name(queue)
    origin = origin_of(dead)
    with Publisher(settings, name="dead-letter replay") as publisher:

        def replay(raw: RawMessage) -> None:
            publisher.republish(raw, exchange="", routing_key=origin, headers=_fresh_headers(raw))

        return _settle(settings, dead, message_id, before_ack=replay)


def discard_dead_letters(settings: Settings, queue: str, message_id: str | None = None) -> int:
    """Delete dead letters (all, or the one with ``message_id``) for good."""
    return _settle(settings, _dead_name(queue), message_id, before_ack=lambda raw: None)


# --- helpers -----------------------------------------------------------------------------------------
def _dead_name(queue: str) -> str:
    return queue if queue.endswith(DEAD_SUFFIX) else dead_letter_queue_name(queue)


@contextmanager
def _connection(settings: Settings) -> Iterator[Connection]:
    conn = open_connection(settings, name="dead-letter ops")
    try:
        yield conn
    finally:
        conn.release()


@contextmanager
def _taken(settings: Settings, dead: str, limit: int) -> Iterator[list[RawMessage]]:
    """Up to ``limit`` messages taken without ack; the ones not acked inside go back after."""
    with _connection(settings) as conn:
        channel = conn.channel()
        queue = Queue(dead, channel=channel, no_declare=True)
        taken: list[RawMessage] = []
        while len(taken) < limit:
            raw = queue.get(no_ack=False)
            if raw is None:
                break
            taken.append(raw)
        try:
            yield taken
        finally:
            # Explicit requeue: kombu's memory transport would drop them on close instead.
            for raw in taken:
                if not raw.acknowledged:
                    raw.reject(requeue=True)


def _settle(
    settings: Settings, dead: str, message_id: str | None, before_ack: Callable[[RawMessage], None]
) -> int:
    done = 0
    with _taken(settings, dead, DEFAULT_LIMIT if message_id is None else 10 * DEFAULT_LIMIT) as taken:
        for raw in taken:
            if message_id is None or raw.properties.get("message_id") == message_id:
                before_ack(raw)
                raw.ack()
                done += 1
    return done


def _describe(dead: str, raw: RawMessage) -> DeadLetter:
    headers = dict(raw.headers or {})
    reason = headers.get(DEAD_REASON_HEADER)
    if reason is None:  # dead-lettered by the broker itself (x-delivery-limit exceeded)
        deaths = headers.get("x-death") or [{}]
        reason = f"broker: {deaths[0].get('reason', 'unknown')}"
    attempts = headers.get(ATTEMPTS_HEADER)
    body = raw.body.decode("utf-8", "replace") if isinstance(raw.body, bytes) else str(raw.body)
    return DeadLetter(
        queue=dead,
        origin=str(headers.get(DEAD_QUEUE_HEADER) or origin_of(dead)),
        message_id=raw.properties.get("message_id"),
        type=raw.properties.get("type"),
        reason=str(reason),
        attempts=int(attempts) if attempts is not None else None,
        dead_at=headers.get(DEAD_AT_HEADER),
        body=body,
        headers=headers,
    )


_DEATH_HEADERS = {
    ATTEMPTS_HEADER,
    BROKER_COUNT_HEADER,
    DEAD_AT_HEADER,
    DEAD_QUEUE_HEADER,
    DEAD_REASON_HEADER,
    LAST_ERROR_HEADER,
    *BROKER_DEATH_HEADERS,
}


def _fresh_headers(raw: RawMessage) -> dict[str, Any]:
    return {k: v for k, v in (raw.headers or {}).items() if k not in _DEATH_HEADERS}
