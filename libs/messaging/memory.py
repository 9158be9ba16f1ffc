"""What the memory:// broker cannot do, done by the consumer runner (embedded mode).

kombu's in-process transport has no TTL, no dead-lettering and no delivery limit, and it drops an
unacked message when its consumer goes away. So on memory://:

- a retry is held here until RETRY_DELAY_MS has passed, then put back on its queue (the drain loop
  calls :meth:`HeldRetries.release_due`); at stop, pending retries go back at once rather than be
  lost with the process' memory;
- a message the runner could not finish is put back on its queue by :func:`give_back`.

The observable behaviour is the same as on RabbitMQ.
"""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from kombu.message import Message as RawMessage

from libs.messaging.headers import copy_headers
from libs.messaging.publisher import Publisher


@dataclass(order=True)
class _Held:
    due: float
    seq: int
    queue: str = field(compare=False)
    raw: RawMessage = field(compare=False)
    headers: dict[str, Any] = field(compare=False)


class HeldRetries:
    """Retries waiting for their delay, earliest first."""

    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher
        self._heap: list[_Held] = []
        self._seq = itertools.count()

    def hold(self, queue: str, raw: RawMessage, headers: dict[str, Any], delay: float) -> None:
        heapq.heappush(self._heap, _Held(time.monotonic() + delay, next(self._seq), queue, raw, headers))

    def release_due(self) -> None:
        now = time.monotonic()
        while self._heap and self._heap[0].due <= now:
            self._release(heapq.heappop(self._heap))

    def flush(self) -> None:
        while self._heap:
            self._release(heapq.heappop(self._heap))

    def _release(self, held: _Held) -> None:
        self._publisher.republish(held.raw, exchange="", routing_key=held.queue, headers=held.headers)


def give_back(publisher: Publisher, queue: str, raw: RawMessage) -> None:
    """Put an unfinished message back on its queue and ack this copy (RabbitMQ would requeue it
    when the channel closes; the memory transport would drop it)."""
    if not raw.acknowledged:
        publisher.republish(raw, exchange="", routing_key=queue, headers=copy_headers(raw))
        raw.ack()
