"""Stopping the launcher in-process: a stop asked for before or during start starts nothing more,
and shutdown leaves no thread behind (an interpreter that exits with threads inside SQLite or a
socket can hang in its own finalization)."""

from __future__ import annotations

import threading
import urllib.request

from sqlalchemy import func, select

from libs.db import OutboxMessage
from libs.messaging import reset_memory_broker
from libs.messaging.testing import commit_to_outbox, sample_submitted, wait_for
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


def test_what_the_parts_commit_while_they_stop_is_still_published_by_this_process(settings):
    # A consumer finishing its message in hand, a last request: they commit events after the stop
    # was asked for. The relay stops only once they have, so those events leave with the process.
    reset_memory_broker()
    running = launcher.start(settings.replace(PORT=0), web=False)
    db = running.platform.db
    stopped = []

    def unsent() -> int:
        with db.session(all_orgs=True) as session:
            return int(session.scalar(select(func.count()).where(OutboxMessage.sent_at.is_(None))) or 0)

    def finishing_a_message() -> None:
        commit_to_outbox(db, [sample_submitted()])
        # The stop was asked for before this commit; the relay still publishes it.
        wait_for(lambda: unsent() == 0, "the event committed during the stop to be published", timeout=30)
        stopped.append(running.relay is not None and running.relay[1].is_alive())

    running.stop.set()  # what Ctrl-C or SIGTERM does first
    running.stoppers.insert(0, finishing_a_message)
    assert running.shutdown() == []
    assert stopped == [True]  # the relay was still running when the part had committed
    assert not running.relay[1].is_alive()
