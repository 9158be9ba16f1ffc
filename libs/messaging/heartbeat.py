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


@contextlib.contextmanager
def keepalive(conn: Connection | None, heartbeat: float, name: str) -> Iterator[None]:
    """Send AMQP heartbeat frames on ``conn`` while the block (a handler) runs.

    The drain loop sends them between messages only, so a handler longer than two HEARTBEAT
    periods (a generation session: minutes) would have RabbitMQ close the connection and redeliver
    the message to another worker mid-render. Only heartbeat frames are written from the helper
    thread, while the consuming thread is inside the block and writes nothing; the helper is
    stopped before the block ends (before the ack). The first frame is due after HEARTBEAT / 3
    seconds, so a short block costs no more than starting and stopping the thread."""
    if conn is None or not heartbeat:
        yield
        return
    done = threading.Event()

    def beat() -> None:
        while not done.wait(heartbeat / 3):
            try:
                conn.connection.send_heartbeat()
            except Exception as exc:  # the drain loop will notice the dead connection itself
                log.warning("%s could not send a heartbeat: %r", name, exc)
                return

    thread = threading.Thread(target=beat, name=f"keepalive-{name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
