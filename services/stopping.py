"""Ctrl-C and SIGTERM as a stop request, caught from the first line of a command's ``main``.

    def main(argv=None):
        stop = catch_stop_signals()      # before anything heavy is imported or started
        ...
        running = launcher.start(settings, stop=stop)
        launcher.run_until_stopped(running)

Python's own Ctrl-C raises KeyboardInterrupt wherever the main thread happens to be: in the middle
of a migration, of the demo seeding, of starting threads or of stopping them, which leaves the
process half started and exiting with a traceback (and SIGTERM kills it outright). Here both
signals only set an event; the launcher checks it between its steps and stops everything cleanly.

This module imports nothing heavy on purpose: the sooner the handlers are in place, the smaller the
window in which a signal finds the interpreter's defaults. (Before the interpreter runs any of our
code at all the operating system's defaults apply; no program can change that.)
"""

from __future__ import annotations

import faulthandler
import signal
import sys
import threading
import time
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """A stop asked for by a signal, as an Event the rest of the program can wait on.

    The handler itself takes no lock: it runs in the main thread between two bytecodes, and the
    main thread may be inside ``event.wait()`` / ``event.set()`` of this very event, holding its
    internal lock — ``event.set()`` from the handler would then wait for itself forever (seen: a
    worker that ignored SIGTERM). So the handler only flips a plain flag, and a small daemon thread
    turns the flag into ``event.set()``."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._requested = False
        self._watcher: threading.Thread | None = None

    def handle(self, _signum: int, _frame: FrameType | None) -> None:
        self._requested = True  # a plain store: safe wherever the main thread was interrupted

    def watch(self) -> None:
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._relay, name="stop-signal", daemon=True)
            self._watcher.start()

    def _relay(self) -> None:
        while not self._requested:
            time.sleep(0.05)
        self.event.set()


_request = StopRequest()


def catch_stop_signals() -> threading.Event:
    """From now on SIGINT and SIGTERM set the returned event (one per process) instead of raising.

    Also unblocks them: a process started with these signals blocked (some supervisors and the
    tests do that) receives the ones sent in the meantime right here, into the new handler."""
    _request.watch()  # started while the signals may still be blocked: it inherits that mask
    for sig in STOP_SIGNALS:
        signal.signal(sig, _request.handle)
    # `kill -USR1 <pid>` prints every thread's stack to stderr: what a process that will not stop
    # is doing, without stopping it.
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    return _request.event
