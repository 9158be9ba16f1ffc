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
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_stop = threading.Event()


def catch_stop_signals() -> threading.Event:
    """From now on SIGINT and SIGTERM set the returned event (one per process) instead of raising.

    Also unblocks them: a process started with these signals blocked (some supervisors and the
    tests do that) receives the ones sent in the meantime right here, into the new handler."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _request_stop)
    # `kill -USR1 <pid>` prints every thread's stack to stderr: what a process that will not stop
    # is doing, without stopping it.
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    return _stop


def _request_stop(_signum: int, _frame: FrameType | None) -> None:
    # Only set a flag: a signal handler runs between two bytecodes of the main thread, wherever
    # it is, so anything more (printing, stopping threads) could break the code it interrupted.
    _stop.set()
