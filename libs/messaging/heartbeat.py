"""Heartbeats of two kinds: the worker's row in the database, and AMQP heartbeats during a handler.

Worker heartbeats: each consumer upserts one row every HEARTBEAT_SECONDS (ops: Workers page).

The row says who it is (service, host, pid), since when it runs, when it was last seen, how many
messages it handled or failed, and which session it is working on. A worker whose row is older
than WORKER_GONE_SECONDS is shown as gone. Writing the row never stops the consumer: a database
outage only logs a warning and the next beat tries again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kombu import Connection
from sqlalchemy.exc import SQLAlchemyError

from libs.db import Database, WorkerHeartbeat

log = logging.getLogger("headshots.messaging.heartbeat")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Heartbeat:
    service: str
    db: Database
    every: float
    clock: Callable[[], datetime] = _now
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    instance: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    started_at: datetime = field(init=False)
    _last: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.started_at = self.clock()

    @property
    def worker_id(self) -> str:
        return f"{self.service}@{self.host}:{self.pid}:{self.instance}"

    def maybe_beat(self, monotonic_now: float, *, handled: int, failed: int, current: str | None) -> None:
        """Beat if ``every`` seconds passed since the last one (``every`` <= 0: never)."""
        if self.every <= 0 or (self._last is not None and monotonic_now - self._last < self.every):
            return
        self._last = monotonic_now
        self.beat(handled=handled, failed=failed, current=current)

    def beat(self, *, handled: int, failed: int, current: str | None) -> None:
        try:
            with self.db.session(all_orgs=True) as db_session:
                row = db_session.get(WorkerHeartbeat, self.worker_id)
                if row is None:
                    row = WorkerHeartbeat(
                        id=self.worker_id,
                        service=self.service,
                        host=self.host[:200],
                        pid=self.pid,
                        started_at=self.started_at,
                    )
                    db_session.add(row)
                row.last_seen_at = self.clock()
                row.handled = handled
                row.failed = failed
                row.current_session_id = current
                db_session.commit()
        except SQLAlchemyError as exc:
            log.warning("%s heartbeat not written: %s", self.service, exc.__class__.__name__)

    def beat_until(self, stop: threading.Event, counts: Callable[[], tuple[int, int, str | None]]) -> None:
        """Beat every ``every`` seconds until ``stop``; ``counts()`` gives (handled, failed, current
        session). Run it in its own thread, so a long handler (a render of minutes) still beats."""
        if self.every <= 0:
            return
        while True:
            handled, failed, current = counts()
            self.beat(handled=handled, failed=failed, current=current)
            if stop.wait(self.every):
                return


class Keepalive:
    """Sends AMQP heartbeat frames on the consuming connection while handlers run.

    The drain loop sends them between messages only, so a handler longer than two HEARTBEAT
    periods (a generation session: minutes) would have RabbitMQ close the connection and redeliver
    the message to another worker mid-render. One thread per consumer ticks every HEARTBEAT / 3 s
    and writes a heartbeat frame only inside :meth:`busy`, under a lock that :meth:`busy` takes
    on the way out: the consuming thread writes nothing inside the block, and no frame is being
    written once it has left it (before the ack). A handler costs two uncontended lock operations,
    no thread start and no thread switch."""

    def __init__(self, heartbeat: float, name: str) -> None:
        self.heartbeat = heartbeat
        self.name = name
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._done = threading.Event()

    def start(self) -> None:
        if self.heartbeat:
            threading.Thread(target=self._run, name=f"keepalive-{self.name}", daemon=True).start()

    def close(self) -> None:
        self._done.set()

    @contextlib.contextmanager
    def busy(self, conn: Connection | None) -> Iterator[None]:
        with self._lock:
            self._conn = conn
        try:
            yield
        finally:
            with self._lock:
                self._conn = None

    def _run(self) -> None:
        while not self._done.wait(self.heartbeat / 3):
            with self._lock:
                if self._conn is None:
                    continue
                try:
                    self._conn.connection.send_heartbeat()
                except Exception as exc:  # the drain loop will notice the dead connection itself
                    log.warning("%s could not send a heartbeat: %r", self.name, exc)
                    self._conn = None
