"""The gateway instance's own queue: every per-session event, whoever else consumes it.

    listener = EventListener(settings, db, rooms)
    listener.start()          # a thread: declare gateway.<instance>, consume, reconnect on loss
    listener.stop()

The queue is exclusive and auto-delete (libs.messaging.declare_gateway_queue): it lives as long
as this instance's connection, so every instance sees every event. Messages are taken without
acks: a lost one costs nothing that the outbox cannot give back (after a reconnection the rooms
catch up from it, and pages replay from it when they reconnect).
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
import uuid
from collections import deque
from typing import Any

from kombu import Consumer
from kombu.message import Message as RawMessage

from libs.contracts import ContractError, decode_message
from libs.db import Database
from libs.messaging import OUTBOX_ID_HEADER, declare_gateway_queue, open_connection
from libs.messaging.broker import is_memory, release_quietly
from libs.settings import Settings
from services.gateway.rooms import Rooms
from services.gateway.timeline import outbox_id_of, pushed

log = logging.getLogger("headshots.gateway")

DRAIN_SECONDS = 0.25
MAX_BACKOFF_SECONDS = 10.0
TIMED = 1000  # deliveries kept for the timings in /stats


class Timings:
    """How the last deliveries of this instance went, for /stats (ops and bench/progress.py):

    - ``lag_ms``: from the event being made (its ``occurred_at``) to this instance having it: the
      producer's commit, the relay and the broker; comparable only on clocks kept in step;
    - ``handling_ms``: from having it to having written it to every page of its room (decode,
      the room's lock, the emit).
    """

    def __init__(self, keep: int = TIMED) -> None:
        self._lag: deque[float] = deque(maxlen=keep)
        self._handling: deque[float] = deque(maxlen=keep)

    def add(self, lag_seconds: float, handling_seconds: float) -> None:
        self._lag.append(lag_seconds * 1000)
        self._handling.append(handling_seconds * 1000)

    def summary(self) -> dict[str, Any]:
        lag, handling = list(self._lag), list(self._handling)
        return {"timed": len(lag), "lag_ms": _quantiles(lag), "handling_ms": _quantiles(handling)}


def _quantiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 2), "p99": round(p99, 2)}


class EventListener:
    def __init__(self, settings: Settings, db: Database, rooms: Rooms, instance: str | None = None) -> None:
        self.settings = settings
        self.db = db
        self.rooms = rooms
        self.instance = instance or uuid.uuid4().hex[:12]
        self.queue_name = f"gateway.{self.instance}"
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = {"received": 0, "ignored": 0, "connections": 0}
        self.timings = Timings()

    def start(self) -> threading.Thread:
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name=f"gateway-{self.instance}", daemon=True)
            self._thread.start()
        return self._thread

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)

    def run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                self._consume()
                backoff = 0.2
            except Exception as exc:  # broker gone, connection closed: reconnect, never die
                self._ready.clear()
                if self._stop.is_set():
                    break
                log.warning(
                    "gateway %s lost the broker (%r); reconnecting in %.1f s", self.instance, exc, backoff
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        log.info("gateway %s stopped listening", self.instance)

    def _consume(self) -> None:
        conn = open_connection(self.settings, name=f"gateway {self.instance}")
        try:
            queue = declare_gateway_queue(conn, self.instance)
            consumer = Consumer(
                conn.default_channel, queues=[queue], on_message=self._on_message, no_ack=True
            )
            consumer.consume()
            self.stats["connections"] += 1
            # Pages that followed while this queue did not exist (start-up, a lost connection)
            # get what was published meanwhile from the outbox.
            self.rooms.catch_up()
            self._ready.set()
            log.info("gateway %s listening on %s", self.instance, self.queue_name)
            while not self._stop.is_set():
                try:
                    conn.drain_events(timeout=DRAIN_SECONDS)
                except TimeoutError:
                    if not is_memory(self.settings):
                        conn.heartbeat_check()
        finally:
            release_quietly(conn)

    def _on_message(self, raw: RawMessage) -> None:
        received = time.time()
        self.stats["received"] += 1
        try:
            message = decode_message(raw.body)
        except ContractError as exc:
            self.stats["ignored"] += 1
            log.warning("gateway %s ignored a message that breaks its contract: %s", self.instance, exc)
            return
        session_id = message.session_id
        if session_id is None or not self.rooms.followed(session_id):
            return  # nobody here listens to it
        try:
            outbox_id = _header_id(raw) or self._look_up(message.message_id)
            if outbox_id is None:
                self.stats["ignored"] += 1
                log.warning(
                    "gateway: %s %s has no outbox row; not relayed", message.routing_key, message.message_id
                )
                return
            self.rooms.deliver(session_id, pushed(outbox_id, message))
            self.timings.add(received - message.occurred_at.timestamp(), time.time() - received)
        except Exception:
            # One bad delivery must not end the listener (and with it every page's live view).
            log.exception("gateway %s could not deliver %s", self.instance, message.message_id)

    def _look_up(self, message_id: str) -> int | None:
        with self.db.session(all_orgs=True) as db_session:
            return outbox_id_of(db_session, message_id)


def _header_id(raw: RawMessage) -> int | None:
    value = (raw.headers or {}).get(OUTBOX_ID_HEADER)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
