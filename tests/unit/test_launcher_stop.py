"""Stopping the launcher in-process: a stop asked for before or during start starts nothing more,
and shutdown leaves no thread behind (an interpreter that exits with threads inside SQLite or a
socket can hang in its own finalization)."""

from __future__ import annotations

import threading
import urllib.request

from libs.messaging import reset_memory_broker
from services import launcher


def _others() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t is not threading.current_thread()}


def test_a_stop_asked_before_start_starts_nothing(settings):
    before = _others()
    stop = threading.Event()
    stop.set()
    running = launcher.start(settings.replace(PORT=0), seed=True, stop=stop)
    assert running.threads == [] and running.server is None
    assert running.shutdown() == []
    assert _others() == before


def test_shutdown_joins_every_thread_it_started(settings):
    reset_memory_broker()
    before = _others()
    running = launcher.start(settings.replace(PORT=0))
    names = {t.name for t in running.threads}
    assert {"outbox-relay", "consumer-intake", "http"} <= names
    url = running.platform.settings.public_url
    with urllib.request.urlopen(f"{url}/healthz", timeout=30) as r:
        assert r.status == 200
    assert running.shutdown() == []
    assert not any(t.is_alive() for t in running.threads)
    assert not {t.name for t in _others() - before if t.is_alive()} & names


def test_a_signal_while_the_main_thread_holds_the_stop_events_lock_does_not_deadlock():
    # What a signal does to a main thread sitting in stop.wait(): the handler runs while the
    # event's internal lock is held. It must neither block nor lose the request.
    from services.stopping import StopRequest

    request = StopRequest()
    request.watch()
    with request.event._cond:  # as Event.wait() holds it
        request.handle(15, None)  # returns at once (it used to call event.set() and hang here)
    assert request.event.wait(10)
