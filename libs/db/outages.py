"""Riding out a short database outage (a restart, a failover) where giving up would be worse.

    retry_while_unavailable(lambda: ledger_write(...), seconds=20)

For writes that record something already done outside the database — an e-mail the SMTP server
accepted, a webhook the endpoint answered. If such a write fails because PostgreSQL is restarting,
the event handling it is retried or the claim expires, and the side effect happens again (a
second e-mail, a second webhook). Waiting a few seconds for the database to come back records it
once. Only connection-level failures are retried; any other error is raised at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import OperationalError

T = TypeVar("T")
log = logging.getLogger("headshots.db")


def retry_while_unavailable(write: Callable[[], T], *, seconds: float = 20.0, pause: float = 0.5) -> T:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return write()
        except OperationalError as exc:
            if time.monotonic() + pause > deadline:
                raise
            log.warning("database unavailable (%s); trying the write again", type(exc.orig).__name__)
            time.sleep(pause)
