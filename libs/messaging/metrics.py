"""Prometheus metrics of the consumer runner, exposed by every app's /metrics (libs/web).

    headshots_messages_total{queue, outcome}     handled, duplicate, retried, dead_lettered
    headshots_handler_seconds{queue}             time from delivery to ack of handled messages

Alerts worth setting are listed in docs/ops.md.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from prometheus_client import Counter, Histogram

MESSAGES = Counter(
    "headshots_messages_total", "Messages taken from a consumer queue, by outcome", ["queue", "outcome"]
)
HANDLER_SECONDS = Histogram(
    "headshots_handler_seconds",
    "Handling time of a message (decode, handler, commit, ack)",
    ["queue"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)


def record(queue: str, outcome: str, seconds: float | None = None) -> None:
    """Count one message's outcome (and its handling time, for handled messages)."""
    _counter(queue, outcome).inc()
    if seconds is not None:
        _histogram(queue).observe(seconds)


# The labelled series, looked up once each (``labels()`` costs more than the count itself).
@cache
def _counter(queue: str, outcome: str) -> Any:
    return MESSAGES.labels(queue, outcome)


@cache
def _histogram(queue: str) -> Any:
    return HANDLER_SECONDS.labels(queue)
