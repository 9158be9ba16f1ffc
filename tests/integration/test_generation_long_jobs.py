"""A handler that runs longer than the heartbeat (a generation session takes minutes) keeps its
RabbitMQ connection: the consumer sends heartbeats while it works, so the message is not taken
away and handed to another worker in the middle of a render."""

from __future__ import annotations

import threading

import pytest

from libs.contracts import PHOTOS_PROCESSED, new_message
from libs.db import Database
from libs.messaging import Bus
from libs.messaging.testing import running, wait_for
from libs.settings import Settings

pytestmark = pytest.mark.integration


def test_a_handler_longer_than_two_heartbeats_keeps_its_connection(tmp_path, amqp_url, pg_url):
    settings = Settings(
        VAR_DIR=str(tmp_path / "var"),
        BROKER_URL=amqp_url,
        DATABASE_URL=pg_url,
        SECRET_KEY="test-secret",
        HEARTBEAT=1,  # RabbitMQ closes a connection silent for two periods: here, ~2 s
    )
    db = Database(pg_url)
    bus = Bus(settings, db)
    bus.declare()
    calls: list[str] = []
    released = threading.Event()

    def long_render(message, *, generation=None):
        calls.append(message.message_id)
        released.wait(5)  # five heartbeat periods without the drain loop

    message = new_message(PHOTOS_PROCESSED, org_id="org-1", session_id="session-1", photo_ids=["p1"])
    consumer = bus.consumer("generation", {PHOTOS_PROCESSED: long_render})
    try:
        with running(consumer):
            publisher = bus.publisher("test")
            publisher.publish(message)
            publisher.close()
            wait_for(lambda: consumer.stats["handled"] == 1, "the long handler to finish", 60)
        assert calls == [message.message_id]
        assert consumer.stats["reconnects"] == 0 and consumer.stats["duplicate"] == 0
    finally:
        db.dispose()
