"""Connections to RabbitMQ read ahead: a batch of deliveries that arrived together is taken from
the socket in a few reads, and every message comes out whole and in order."""

from __future__ import annotations

import pytest
from kombu import Consumer, Exchange, Producer, Queue

from libs.messaging.broker import _ReadAheadTCPTransport, open_connection, release_quietly
from libs.settings import Settings

pytestmark = pytest.mark.integration

COUNT = 200


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
    finally:
        release_quietly(sender)
        release_quietly(receiver)
