"""Retry policy: what becomes of a message whose handler did not succeed.

    handler raises Exception ──► attempts used < DELIVERY_LIMIT ──► retry (copy to <queue>.retry)
                            └──► attempts used = DELIVERY_LIMIT ──► dead letter
    handler raises Permanent ──────────────────────────────────────► dead letter at once
    database OperationalError / InterfaceError ────────────────────► retry, attempt not counted
    delivered more than DELIVERY_LIMIT times without an outcome ───► dead letter

A retry is a new copy published (with confirms) to the queue's retry queue, then the original is
acked, so the messages behind a failing one keep flowing. After RETRY_DELAY_MS the broker sends
the copy back to this queue only. On memory:// the copy is held by :class:`HeldRetries` instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kombu.message import Message as RawMessage
from sqlalchemy.exc import InterfaceError, OperationalError

from libs.contracts import RETRY_EXCHANGE
from libs.messaging.errors import Permanent
from libs.messaging.headers import ATTEMPTS_HEADER, LAST_ERROR_HEADER, clip, copy_headers, short_id
from libs.messaging.memory import HeldRetries
from libs.messaging.publisher import Publisher
from libs.settings import Settings

log = logging.getLogger("headshots.messaging.consumer")

RETRY = "retried"
DEAD = "dead_lettered"


@dataclass(frozen=True)
class Verdict:
    outcome: str  # RETRY or DEAD
    reason: str = ""  # why it is dead-lettered
    counted: bool = True  # whether this retry uses up an attempt


def out_of_attempts(attempt: int, limit: int) -> Verdict | None:
    """Before handling: earlier deliveries ended without an outcome (the consumer died or lost its
    connection) so often that the message must not be tried again."""
    if attempt > limit:
        return Verdict(DEAD, f"delivered {attempt} times without success")
    return None


def after_failure(exc: Exception, attempt: int, limit: int) -> Verdict:
    if isinstance(exc, Permanent):
        return Verdict(DEAD, f"Permanent: {exc}")
    if isinstance(exc, OperationalError | InterfaceError):
        # The database is down or locked: not this message's fault, so the attempt is not counted
        # (an outage longer than DELIVERY_LIMIT retries must not dead-letter everything).
        return Verdict(RETRY, counted=False)
    if attempt >= limit:
        return Verdict(DEAD, f"failed {attempt} times, last: {exc!r}")
    return Verdict(RETRY)


def retry(
    publisher: Publisher,
    held: HeldRetries | None,
    settings: Settings,
    queue: str,
    raw: RawMessage,
    exc: Exception,
    attempt: int,
    *,
    counted: bool = True,
) -> None:
    """Send ``raw`` of consumer queue ``queue`` round again after RETRY_DELAY_MS, then ack it."""
    headers = copy_headers(raw)
    headers[ATTEMPTS_HEADER] = attempt if counted else attempt - 1
    headers[LAST_ERROR_HEADER] = clip(repr(exc))
    if held is not None:
        held.hold(queue, raw, headers, settings.RETRY_DELAY_MS / 1000)
    else:
        # The retry queue holds it for RETRY_DELAY_MS, then dead-letters it to this queue only.
        publisher.republish(raw, exchange=RETRY_EXCHANGE, routing_key=queue, headers=headers)
    raw.ack()
    log.warning(
        "%s %s failed (%s), retrying in %d ms: %r",
        queue,
        short_id(raw.properties.get("message_id")),
        f"attempt {attempt} of {settings.DELIVERY_LIMIT}" if counted else "database unavailable, not counted",
        settings.RETRY_DELAY_MS,
        exc,
    )
