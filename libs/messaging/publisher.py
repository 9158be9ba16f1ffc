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
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from amqp.exceptions import MessageNacked
from kombu import Connection, Producer
from kombu.message import Message as RawMessage

from libs.contracts import EXCHANGE, Message
from libs.messaging.broker import is_memory, open_connection, release_quietly, safe_url
from libs.messaging.errors import BrokerUnavailable, PublishError
from libs.messaging.frames import publish_frames
from libs.messaging.topology import declare_exchanges
from libs.settings import Settings

log = logging.getLogger("headshots.messaging.publisher")

JSON = "application/json"
PERSISTENT = 2


@dataclass(frozen=True)
class Outgoing:
    """One message of a batch (an outbox row): its body as stored, where it goes, its id."""

    body: str
    routing_key: str
    message_id: str
    headers: dict[str, Any] = field(default_factory=dict)


class _Confirms:
    """Tracks the broker's confirms of one channel: delivery tags count publishes from 1 after
    confirm.select, and an ack or nack may cover every tag up to its own (``multiple``)."""

    def __init__(self) -> None:
        self.next_tag = 1
        self.outcome: dict[int, bool] = {}  # tag -> acked (True) or nacked (False)
        self.pending: set[int] = set()

    def sent(self) -> int:
        tag = self.next_tag
        self.next_tag += 1
        self.pending.add(tag)
        return tag

    def settle(self, tag: int, multiple: bool, acked: bool) -> None:
        covered = [t for t in self.pending if t <= tag] if multiple else [tag]
        for t in covered:
            self.pending.discard(t)
            self.outcome[t] = acked


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
        self._confirms: _Confirms | None = None
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
                if self._confirms is not None:
                    self._confirms.sent()  # keeps the channel's delivery tags counted for batches
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

    def republish(self, raw: RawMessage, *, exchange: str, routing_key: str, headers: dict[str, Any]) -> None:
        """Publish a received message again, body and properties unchanged, with ``headers``
        (a retry, a dead letter, a replay)."""
        self.publish_raw(
            raw.body,
            exchange=exchange,
            routing_key=routing_key,
            message_id=raw.properties.get("message_id"),
            headers=headers,
            content_type=raw.content_type,
            content_encoding=raw.content_encoding,
            type=raw.properties.get("type"),
        )

    def publish_many(self, batch: Sequence[Outgoing]) -> tuple[int, str | None]:
        """Publish a batch in order without waiting for each confirm, then wait for all of them
        together (one round trip instead of one per message).

        Returns how many messages at the head of the batch the broker confirmed, and the reason
        the next one was not (nack, no confirm within PUBLISH_TIMEOUT, connection lost) or None.
        Messages after the first unconfirmed one may have reached the broker: the caller treats
        them as unsent and publishes them again (consumers drop duplicates by message_id)."""
        if not batch:
            return 0, None
        if is_memory(self.settings):
            return self._publish_one_by_one(batch)
        deadline = time.monotonic() + self.settings.PUBLISH_TIMEOUT
        with self._lock:
            try:
                producer = self._producer_before(deadline)
            except PublishError as exc:
                return 0, str(exc)
            channel, confirms = producer.channel, self._confirms
            assert confirms is not None
            tags: list[int] = []
            try:
                amqp_conn = self._conn.connection  # type: ignore[union-attr]
                # The round's frames, built directly (frames.py) and written at once; the
                # confirms are awaited below, all together.
                data = b"".join(
                    publish_frames(
                        channel.channel_id,
                        amqp_conn.frame_max,
                        EXCHANGE,
                        item.routing_key,
                        item.body.encode(),
                        content_type=JSON,
                        content_encoding="utf-8",
                        headers=item.headers,
                        delivery_mode=PERSISTENT,
                        message_id=item.message_id,
                        type=item.routing_key,
                    )
                    for item in batch
                )
                tags = [confirms.sent() for _ in batch]
                amqp_conn.transport.write(data)
                amqp_conn.bytes_sent += 1  # what py-amqp's heartbeat check counts
                while not confirms.pending.isdisjoint(tags):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError
                    self._conn.drain_events(timeout=remaining)  # type: ignore[union-attr]
            except TimeoutError:
                self.close()  # confirms may still arrive on this channel: never reuse it
                error = f"no confirm within {self.settings.PUBLISH_TIMEOUT:g} s"
            except Exception as exc:
                self.close()
                error = f"connection lost while publishing: {exc!r}"
            else:
                error = "broker refused (nack)"
            for done, tag in enumerate(tags):
                if confirms.outcome.get(tag) is not True:
                    item = batch[done]
                    return done, f"{error}: {item.routing_key} {item.message_id}"
            if len(tags) < len(batch):
                item = batch[len(tags)]
                return len(tags), f"{error}: {item.routing_key} {item.message_id}"
            return len(tags), None

    def _publish_one_by_one(self, batch: Sequence[Outgoing]) -> tuple[int, str | None]:
        for done, item in enumerate(batch):
            try:
                self.publish_raw(
                    item.body, routing_key=item.routing_key, message_id=item.message_id, headers=item.headers
                )
            except PublishError as exc:
                return done, str(exc)
        return len(batch), None

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
            declare_exchanges(channel)
            if not is_memory(self.settings):
                # Confirm mode now, so delivery tags count from 1 for both kinds of publish.
                channel._confirm_selected = True
                channel.confirm_select()
                confirms = _Confirms()
                channel.events["basic_ack"].add(lambda tag, multiple: confirms.settle(tag, multiple, True))
                channel.events["basic_nack"].add(lambda tag, multiple: confirms.settle(tag, multiple, False))
                self._confirms = confirms
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
            conn, self._conn, self._producer, self._confirms = self._conn, None, None, None
            if conn is not None:
                release_quietly(conn)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
