"""Helpers for tests of code that publishes or consumes (imported by tests only).

    with running(bus.consumer("review", {SESSION_SUBMITTED: handle})) as consumer:
        publish(...)
        wait_for(lambda: consumer.stats["handled"] == 1, "the message to be handled")

Raw bodies (malformed JSON, schema-invalid envelopes) go through :func:`publish_raw_body`, which
uses pika on RabbitMQ, an AMQP client independent of kombu, and plain kombu on memory://.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

from kombu import Connection, Producer

from libs.contracts import EXCHANGE, SESSION_SUBMITTED, Message, new_message
from libs.db import Database
from libs.messaging.broker import is_memory, reset_memory_broker
from libs.messaging.consumer import Consumer
from libs.settings import Settings


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 20.0, interval: float = 0.02) -> None:
    """Poll ``predicate`` until it is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


@contextmanager
def running(consumer: Consumer, ready_timeout: float = 10.0) -> Iterator[Consumer]:
    """Run a consumer in a thread for the duration of the block; stop and join it after."""
    thread = consumer.start_in_thread()
    try:
        if not consumer.wait_ready(ready_timeout):
            raise AssertionError(f"{consumer.service} consumer did not start consuming")
        yield consumer
    finally:
        consumer.stop()
        thread.join(15)
        if thread.is_alive():
            raise AssertionError(f"{consumer.service} consumer did not stop")


@contextmanager
def fresh_memory_broker() -> Iterator[None]:
    """kombu's memory:// broker is process-wide: start and end a test with it empty."""
    reset_memory_broker()
    try:
        yield
    finally:
        reset_memory_broker()


def pika_parameters(amqp_url: str) -> Any:
    import pika

    parts = urlsplit(amqp_url)
    return pika.ConnectionParameters(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5672,
        virtual_host=unquote(parts.path[1:]) or "/",
        credentials=pika.PlainCredentials(parts.username or "guest", parts.password or "guest"),
    )


def publish_raw_body(
    settings: Settings,
    body: bytes,
    routing_key: str,
    *,
    content_type: str | None = "application/json",
    message_id: str | None = None,
    exchange: str = EXCHANGE,
) -> None:
    """Publish bytes exactly as given, bypassing libs/messaging (and its contract checks)."""
    if is_memory(settings):
        with Connection(settings.BROKER_URL) as conn:
            Producer(conn.channel()).publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                content_type=content_type or "application/octet-stream",
                content_encoding="binary",
                message_id=message_id,
            )
        return
    import pika

    connection = pika.BlockingConnection(pika_parameters(settings.BROKER_URL))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            exchange,
            routing_key,
            body,
            pika.BasicProperties(content_type=content_type, message_id=message_id, delivery_mode=2),
        )
    finally:
        connection.close()


def pika_get_all(amqp_url: str, queue: str, limit: int = 100_000) -> list[tuple[Any, bytes]]:
    """Take (and ack) every message of a RabbitMQ queue with pika: (properties, body) pairs."""
    import pika

    connection = pika.BlockingConnection(pika_parameters(amqp_url))
    got: list[tuple[Any, bytes]] = []
    try:
        channel = connection.channel()
        while len(got) < limit:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                break
            got.append((properties, body))
    finally:
        connection.close()
    return got


def commit_to_outbox(db: Database, messages: list[Message]) -> None:
    """One producer transaction writing ``messages`` to the outbox, as a service's unit of work
    does (scoped to the first message's organization); the relay publishes them after it."""
    with db.uow(org_id=messages[0].org_id) as uow:
        for message in messages:
            uow.add_message(message)
        uow.commit()


def sample_submitted(photo_count: int = 1, org_id: str = "org-1") -> Message:
    """A valid session.submitted message for a fresh session, as tests and benchmarks need one."""
    return new_message(
        SESSION_SUBMITTED,
        org_id=org_id,
        session_id=str(uuid.uuid4()),
        package="executive",
        format="portrait",
        styles=["navy:suit"],
        photo_count=photo_count,
    )
