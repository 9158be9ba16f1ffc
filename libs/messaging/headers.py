"""The AMQP headers libs/messaging writes and reads, named once.

x-outbox-id        the outbox row's id (relay): the gateway tags live events with it
x-attempts         attempts used before this copy was published (retries, crashes)
x-last-error       the last handler error of a retried message
x-dead-reason      why a message was dead-lettered
x-dead-queue       the consumer queue it was dead-lettered from
x-dead-at          when (ISO 8601, UTC)
x-delivery-count   set by RabbitMQ's quorum queues on every redelivery
"""

from __future__ import annotations

from typing import Any

from kombu.message import Message as RawMessage

OUTBOX_ID_HEADER = "x-outbox-id"
ATTEMPTS_HEADER = "x-attempts"
LAST_ERROR_HEADER = "x-last-error"
DEAD_REASON_HEADER = "x-dead-reason"
DEAD_QUEUE_HEADER = "x-dead-queue"
DEAD_AT_HEADER = "x-dead-at"
BROKER_COUNT_HEADER = "x-delivery-count"

# What RabbitMQ adds when it dead-letters a message itself.
BROKER_DEATH_HEADERS = frozenset(
    {"x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason"}
)


def attempt_of(raw: RawMessage) -> int:
    """This delivery's attempt number: earlier attempts of this copy + broker redeliveries + 1."""
    headers = raw.headers or {}
    try:
        return int(headers.get(ATTEMPTS_HEADER, 0)) + int(headers.get(BROKER_COUNT_HEADER, 0)) + 1
    except (TypeError, ValueError):
        return 1


def copy_headers(raw: RawMessage) -> dict[str, Any]:
    """Headers for a new copy of ``raw``: the broker's count belongs to the copy being acked; the
    new copy starts from x-attempts."""
    return {k: v for k, v in (raw.headers or {}).items() if k != BROKER_COUNT_HEADER}


def clip(text: str, limit: int = 1000) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def short_id(message_id: str | None) -> str:
    """A message id for log lines."""
    return f"{message_id[:8]}…" if message_id else "(no message_id)"
