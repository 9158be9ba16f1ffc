"""Connections to RabbitMQ read ahead: a batch of deliveries that arrived together is taken from
the socket in a few reads, and every message comes out whole and in order; the frames already
read are parsed without touching the socket (not even its timeout); and a drain that must not wait
(the end of a consumer's batch, py-amqp's look before each publish) does not read nothing."""

from __future__ import annotations

from typing import Any

import pytest
from kombu import Consumer, Exchange, Producer, Queue

from libs.contracts import SESSION_SUBMITTED, Message
from libs.db import Database
from libs.messaging import Bus, Publisher
from libs.messaging.broker import _ReadAheadTCPTransport, open_connection, release_quietly
from libs.messaging.testing import running, sample_submitted, wait_for
from libs.settings import Settings

pytestmark = pytest.mark.integration

COUNT = 200


class TimeoutsCounted:
    """The transport's socket, counting the changes of its timeout."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self.timeouts_set = 0

    def settimeout(self, timeout: float | None) -> None:
        self.timeouts_set += 1
        self._sock.settimeout(timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def test_a_batch_of_deliveries_is_read_in_a_few_reads_whole_and_in_order(amqp_url: str) -> None:
    settings = Settings(BROKER_URL=amqp_url)
    queue = Queue("read-ahead", Exchange("read-ahead", type="direct"), routing_key="read-ahead")
    sender, receiver = open_connection(settings, name="sender"), open_connection(settings, name="receiver")
    try:
        producer = Producer(sender.channel())
        queue(producer.channel).declare()
        bodies = [f'{{"n": {n}, "pad": "{"x" * (n % 300)}"}}'.encode() for n in range(COUNT)]
        for body in bodies:
            producer.publish(
                body, exchange=queue.exchange, routing_key="read-ahead", content_type="application/json"
            )

        transport = receiver.connection.transport
        assert isinstance(transport, _ReadAheadTCPTransport)
        reads = []
        recv = transport._quick_recv

        def counted(size: int) -> bytes:
            reads.append(size)
            return recv(size)

        transport._quick_recv = counted
        sock = transport.sock = TimeoutsCounted(transport.sock)
        got: list[bytes] = []
        consumer = Consumer(
            receiver.channel(),
            queues=[queue],
            on_message=lambda m: (got.append(m.body), m.ack()),
            prefetch_count=COUNT,
        )
        consumer.consume()
        while len(got) < COUNT:
            receiver.drain_events(timeout=10)
        assert got == bodies
        # py-amqp alone reads each frame in three calls: 600 frames, 1,800 reads.
        assert len(reads) < COUNT // 2, f"{len(reads)} reads for {COUNT} messages"
        # py-amqp sets the timeout of a drain's read and puts it back around every frame: 1,200.
        assert sock.timeouts_set <= 2 * len(reads), f"{sock.timeouts_set} timeouts set, {len(reads)} reads"
    finally:
        release_quietly(sender)
        release_quietly(receiver)


def test_a_lone_delivery_is_handled_without_a_read_that_finds_nothing(
    amqp_url: str, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # After a delivery the consumer takes whatever else has already arrived into the same batch,
    # and py-amqp looks for a connection.blocked before each publish: drains that must not wait.
    # When nothing has arrived (a message that came alone) the connection finds that out with a
    # poll, rather than read with a zero timeout and get nothing (three calls into the kernel).
    empty_reads = 0
    receive = _ReadAheadTCPTransport._receive

    def counted(self: _ReadAheadTCPTransport, size: int, initial: bool) -> bytes:
        nonlocal empty_reads
        without_waiting = self.sock.gettimeout() == 0
        try:
            return receive(self, size, initial)
        except TimeoutError:
            empty_reads += without_waiting
            raise

    monkeypatch.setattr(_ReadAheadTCPTransport, "_receive", counted)
    settings = Settings(BROKER_URL=amqp_url, DATABASE_URL=pg_url)
    db = Database(pg_url)
    bus = Bus(settings, db)
    bus.declare(services=["review"])
    handled: list[str] = []

    def handler(message: Message) -> None:
        handled.append(message.message_id)

    lone = [sample_submitted() for _ in range(20)]
    try:
        with running(bus.consumer("review", {SESSION_SUBMITTED: handler})), Publisher(settings) as publisher:
            for n, message in enumerate(lone, start=1):
                publisher.publish(message)
                wait_for(lambda n=n: len(handled) == n, f"message {n} handled")
    finally:
        db.dispose()
    assert handled == [m.message_id for m in lone]
    # Before: one for each message's batch and one before each publish (40).
    assert empty_reads == 0, f"{empty_reads} reads found nothing for {len(lone)} lone messages"
