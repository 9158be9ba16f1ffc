"""A periodic job of a worker service, run beside its consumer.

    CHECKS = PeriodicJob("ops checks", every=lambda s: s.OPS_CHECK_SECONDS, run=tick)

    def tick(settings, db, now): ...        # ``now`` comes from an injectable clock

    def run_background(settings, db, stop):  # handlers.py: the launcher runs it in a thread
        CHECKS.run_forever(settings, db, stop)

Tests call ``job.run(...)`` directly with the time they want, or ``run_forever(..., clock=...)``. An exception is logged and the next round runs as usual: a broken round must
not stop the checks for good.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from libs.db import Database
from libs.settings import Settings

log = logging.getLogger("headshots.periodic")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    every: Callable[[Settings], float]
    run: Callable[[Settings, Database, datetime], object]

    def run_forever(
        self, settings: Settings, db: Database, stop: threading.Event, clock: Callable[[], datetime] = utc_now
    ) -> None:
        while not stop.wait(max(self.every(settings), 0.05)):
            try:
                self.run(settings, db, clock())
            except Exception:
                log.exception(
                    "periodic job %r failed; it runs again in %.0f s", self.name, self.every(settings)
                )
