"""The one object services are wired with.

bus = Bus(settings, db)
bus.declare()                                   # exchanges + every consumer queue (idempotent)
relay = bus.relay()                             # woken after every commit that wrote outbox rows
threading.Thread(target=relay.run_forever, args=(stop,)).start()
consumer = bus.consumer("review", HANDLERS, deps)
consumer.start_in_thread()                      # or run_consumer_process(...) in its own process
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from libs.contracts import EventType
from libs.db import Database
from libs.messaging import topology
from libs.messaging.broker import open_connection
from libs.messaging.consumer import Consumer
from libs.messaging.injection import Handler
from libs.messaging.publisher import Publisher
from libs.messaging.relay import OutboxRelay
from libs.settings import Settings


class Bus:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db

    def declare(self, services: Iterable[str] | None = None) -> None:
        """Declare the topology (all services by default) before anything is published, so no
        event finds its consumers' queues missing. Raises BrokerUnavailable if unreachable."""
        conn = open_connection(self.settings, name="declare topology")
        try:
            topology.declare(conn, self.settings, services)
        finally:
            conn.release()

    def publisher(self, name: str = "publisher") -> Publisher:
        return Publisher(self.settings, name=name)

    def relay(self, *, wake_after_commits: bool = True) -> OutboxRelay:
        relay = OutboxRelay(self.db, self.publisher("outbox relay"), self.settings)
        if wake_after_commits:
            relay.wake_after_commits()
        return relay

    def consumer(
        self, service: str, handlers: Mapping[EventType, Handler], deps: Mapping[str, Any] | None = None
    ) -> Consumer:
        return Consumer(service, handlers, self.db, self.settings, deps)
