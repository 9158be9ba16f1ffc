"""Publishing with publisher confirms and a deadline.

    with Publisher(settings) as publisher:
        publisher.publish(new_message(SESSION_SUBMITTED, org_id=org, session_id=sid, **data))

Services do not publish directly: they write outbox rows in their transaction
(``uow.add_message``) and the relay (relay.py) publishes them with this class.

Every message goes out persistent (delivery_mode 2), ``content_type=application/json``, with the
envelope's ``message_id`` and ``type`` = routing key, and :meth:`Publisher.publish` returns only
once the broker has confirmed it. Anything else, a refused connection, a nack, or no confirm within
``PUBLISH_TIMEOUT`` seconds, raises :class:`PublishError` with the reason; the call never hangs.

Unroutable messages: publishing is not ``mandatory``. The topology is declared (``Bus.declare``)
before any relay publishes, so every event with a subscriber in ``SUBSCRIPTIONS`` has a queue; an
event only gateways listen to (``SESSION_PROGRESS``) is simply dropped while no gateway instance
runs, which is what a live-progress event should do (waiting pages replay from the outbox).
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType
from typing import Any

from amqp.exceptions import MessageNacked
from kombu import Connection, Producer

from libs.contracts import EXCHANGE, Message
from libs.messaging.broker import is_memory, open_connection, release_quietly, safe_url
from libs.messaging.errors import BrokerUnavailable, PublishError
from libs.messaging.topology import DEAD_LETTERS, EVENTS, RETRIES
from libs.settings import Settings

log = logging.getLogger("headshots.messaging.publisher")

JSON = "application/json"
PERSISTENT = 2


class Publisher:
    """One connection and channel in confirm mode; thread-safe (publishes are serialized).

    It connects lazily, and after a connection error it reconnects once within the same
    deadline, so a connection the broker closed while idle costs one retry, not an error.
    """

    def __init__(self, settings: Settings, *, name: str = "publisher") -> None:
        self.settings = settings
        self.name = name
        self._conn: Connection | None = None
        self._producer: Producer | None = None
        self._lock = threading.RLock()

    # --- publishing ------------------------------------------------------------------------------
    def publish(self, message: Message) -> None:
        """Publish an event to ``headshots.events`` and wait for the broker's confirm."""
        self.publish_raw(message.to_json(), routing_key=message.routing_key, message_id=message.message_id)

    def publish_raw(
        self,
        body: str | bytes,
        *,
        routing_key: str,
        message_id: str | None,
        exchange: str = EXCHANGE,
        headers: dict[str, Any] | None = None,
        content_type: str | None = JSON,
        content_encoding: str | None = None,
        type: str | None = None,  # noqa: A002 - the AMQP property's name
    ) -> None:
        """Publish a body as is (an outbox row, a message being retried or dead-lettered)."""
        deadline = time.monotonic() + self.settings.PUBLISH_TIMEOUT
        properties: dict[str, Any] = {"type": type or routing_key}
        if message_id is not None:
            properties["message_id"] = message_id
        with self._lock:
            for attempt in (1, 2):
                producer = self._producer_before(deadline)
                remaining = max(0.05, deadline - time.monotonic())
                try:
                    producer.publish(
                        body,
                        exchange=exchange,
                        routing_key=routing_key,
                        delivery_mode=PERSISTENT,
                        content_type=content_type or "application/octet-stream",
                        content_encoding=content_encoding,
                        headers=headers or {},
                        timeout=remaining,
                        confirm_timeout=remaining,
                        **properties,
                    )
                    return
                except MessageNacked:
                    raise PublishError(f"broker refused (nack) {routing_key} {message_id}") from None
                except TimeoutError:
                    # The confirm may still arrive later on this channel: never reuse it.
                    self.close()
                    raise PublishError(
                        f"no confirm for {routing_key} {message_id} within "
                        f"{self.settings.PUBLISH_TIMEOUT:g} s from {safe_url(self.settings.BROKER_URL)}"
                    ) from None
                except Exception as exc:
                    # A closed connection (broker restart, close_all_connections, missed
                    # heartbeats) or a channel error: start again on a fresh connection once.
                    self.close()
                    if attempt == 2 or time.monotonic() >= deadline:
                        raise PublishError(f"could not publish {routing_key} {message_id}: {exc!r}") from exc
                    log.info("%s: reconnecting after %r", self.name, exc)
        raise AssertionError("unreachable")

    # --- connection --------------------------------------------------------------------------------
    def _producer_before(self, deadline: float) -> Producer:
        if self._producer is not None:
            return self._producer
        try:
            conn = open_connection(self.settings, name=self.name, deadline=deadline)
        except BrokerUnavailable as exc:
            raise PublishError(str(exc)) from exc
        try:
            channel = conn.channel()
            # Publishing to an exchange that does not exist closes the channel on RabbitMQ and
            # silently drops the message on memory://: make sure ours exist.
            for exchange in (EVENTS, DEAD_LETTERS, RETRIES):
                exchange(channel).declare()
        except Exception as exc:
            conn.release()
            raise PublishError(
                f"could not open a channel on {safe_url(self.settings.BROKER_URL)}: {exc}"
            ) from exc
        self._conn, self._producer = conn, Producer(channel)
        return self._producer

    def heartbeat_check(self) -> None:
        """Keep an idle connection alive; call it at least every HEARTBEAT/2 seconds."""
        with self._lock:
            if self._conn is None or is_memory(self.settings):
                return
            try:
                self._conn.heartbeat_check()
            except Exception as exc:
                log.info("%s: connection lost while idle (%r); reconnecting on next publish", self.name, exc)
                self.close()

    def close(self) -> None:
        with self._lock:
            conn, self._conn, self._producer = self._conn, None, None
            if conn is not None:
                release_quietly(conn)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
