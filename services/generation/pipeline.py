"""Store one image while the engine renders the next: a single background thread, one job deep.

    with StoreAhead() as ahead:
        for rendered in engine.render(...):
            ahead.submit(store, rendered)    # waits for the previous store first, and re-raises its error
        ahead.drain()                        # every store done (errors re-raised)

Storing an image (likeness scoring, JPEG encoding, two blobs, a commit) costs a noticeable part of
a studio render and nothing of the GPU's time: overlapped, the worker costs about what its engine
does. One job deep keeps the promises of the sequential version: a store that finds the session
deleted is known before the image after next is handed over, so the worker stops within one image,
and images are recorded in the order they were rendered.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any

log = logging.getLogger("headshots.generation")


class StoreAhead:
    """``depth=0``: no thread, ``submit`` runs the job at once (an engine that keeps the CPU busy
    itself gains nothing from a second thread on the same cores)."""

    def __init__(self, depth: int = 1) -> None:
        self.depth = depth
        self._pool = ThreadPoolExecutor(max_workers=max(1, depth), thread_name_prefix="generation-store")
        self._pending: deque[Future[Any]] = deque()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        if self.depth == 0:
            fn(*args)
            return
        while len(self._pending) >= self.depth:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(fn, *args))

    def drain(self) -> None:
        while self._pending:
            self._pending.popleft().result()

    def __enter__(self) -> StoreAhead:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Leaving early (an engine error, a stop): let the store in hand finish so the database and
        # the blob store agree, but the error that made us leave is the one that counts.
        try:
            if kind is None:
                self.drain()
            else:
                for future in self._pending:
                    if future.exception() is not None:
                        log.warning("a headshot store failed while stopping: %r", future.exception())
        finally:
            self._pool.shutdown(wait=True)
