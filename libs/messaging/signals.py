"""A consumer as a process of its own (distributed mode): SIGTERM and SIGINT stop it cleanly.

run_consumer_process(settings, "review", HANDLERS, deps)      # python -m services.review
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Mapping
from typing import Any

from libs.contracts import EventType
from libs.db import Database
from libs.messaging.consumer import Consumer
from libs.messaging.injection import Handler
from libs.settings import Settings

log = logging.getLogger("headshots.messaging.consumer")


def run_consumer_process(
    settings: Settings,
    service: str,
    handlers: Mapping[EventType, Handler],
    deps: Mapping[str, Any] | None = None,
    db: Database | None = None,
) -> Consumer:
    """Run one service's consumer in this process' main thread until SIGTERM or SIGINT, which
    finish the message in hand and return (distributed mode: ``python -m services.<name>``).

    The signal handler takes no lock: it runs in the main thread between two bytecodes, possibly
    inside the consumer's own ``Event.wait()``, whose lock ``Event.set()`` would wait for forever.
    It only records the signal; a small watcher thread calls :meth:`Consumer.stop`."""
    consumer = Consumer(service, handlers, db or Database(settings.database_url), settings, deps)
    received: list[int] = []

    def _note(signum: int, _frame: Any) -> None:
        received.append(signum)  # a plain append: safe wherever the main thread was interrupted

    def _watch() -> None:
        while not received:
            if consumer.stopped:
                return
            time.sleep(0.05)
        log.info(
            "%s consumer got %s, finishing the message in hand", service, signal.Signals(received[0]).name
        )
        consumer.stop()

    previous = {sig: signal.signal(sig, _note) for sig in (signal.SIGTERM, signal.SIGINT)}
    watcher = threading.Thread(target=_watch, name=f"stop-signal-{service}", daemon=True)
    watcher.start()
    try:
        consumer.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return consumer
