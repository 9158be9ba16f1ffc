"""The ops worker and pages on real servers (and on the embedded backends, same tests):

- a lost message is recovered by the stuck check (a queued session with no message gets its
  session.approved again and preparation starts), through the periodic loop with an injected clock;
- a dead letter replayed from the ops page is handled once;
- every consumer writes heartbeats (with the session in hand), and a silent one shows as gone;
- the embedded launcher prints a support sign-in link that opens /ops and runs the ops checks.
"""

from __future__ import annotations

import http.cookiejar
import re
import threading
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from libs.contracts import SESSION_APPROVED, SESSION_FAILED, SessionState, new_message
from libs.db import Database, HeadshotSession, ProcessedMessage, UnitOfWork, WorkerHeartbeat
from libs.db.demo import seed_demo
from libs.messaging import Bus, Permanent, list_dead_letters
from libs.messaging.testing import running, wait_for
from libs.settings import Settings
from libs.storage import LocalBlobStore
from services.ops.app import create_app
from services.ops.handlers import OPS_CHECKS
from tests.support.ops import make_session, sign_in, state_of

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(backend: Settings):  # type: ignore[no-untyped-def]
    settings = backend.replace(HEARTBEAT_SECONDS=0.2, WORKER_GONE_SECONDS=2, OPS_CHECK_SECONDS=0.1)
    db = Database(settings.database_url)
    bus = Bus(settings, db)
    bus.declare()
    stop = threading.Event()
    relay = threading.Thread(target=bus.relay().run_forever, args=(stop,), daemon=True)
    relay.start()
    try:
        yield settings, db, bus, seed_demo(db)
    finally:
        stop.set()
        relay.join(10)
        db.dispose()


def start_preparing(message, *, uow: UnitOfWork) -> None:  # type: ignore[no-untyped-def]
    """Stands in for preprocess: the first step it takes on session.approved."""
    hs = uow.get_for_update(HeadshotSession, message.session_id)
    if hs is not None and hs.state == SessionState.QUEUED:
        hs.move_to(SessionState.PREPROCESSING)


def test_a_lost_message_is_recovered_by_the_stuck_check(stack) -> None:  # type: ignore[no-untyped-def]
    settings, db, bus, demo = stack
    # Approved, but its message never reached preprocess (say the broker lost it): nothing moves.
    lost = make_session(db, demo, "queued", idle=timedelta(seconds=30))
    job = OPS_CHECKS
    later = datetime.now(UTC) + timedelta(seconds=settings.STUCK_QUEUED_SECONDS)  # the injected clock
    stop = threading.Event()
    with running(bus.consumer("preprocess", {SESSION_APPROVED: start_preparing})):
        loop = threading.Thread(
            target=job.run_forever, args=(settings, db, stop), kwargs={"clock": lambda: later}
        )
        loop.start()
        try:
            wait_for(
                lambda: state_of(db, lost) == "preprocessing",
                "the re-queued session to reach preprocess",
                timeout=30,
            )
        finally:
            stop.set()
            loop.join(10)
    with db.session(all_orgs=True) as s:
        handled = s.scalar(
            select(func.count())
            .select_from(ProcessedMessage)
            .where(ProcessedMessage.consumer == "preprocess.session.approved")
        )
    assert handled == 1  # re-queued once, not once per round


def test_a_replayed_dead_letter_is_handled_once(stack) -> None:  # type: ignore[no-untyped-def]
    settings, db, bus, demo = stack
    broken = threading.Event()
    broken.set()
    calls: list[str] = []

    def handle_failed(message, *, uow):  # type: ignore[no-untyped-def]
        if broken.is_set():
            raise Permanent("notification templates missing")
        calls.append(message.message_id)

    hs = make_session(db, demo, "training")
    dead = "ops.session.failed.dead"
    with running(bus.consumer("ops", {SESSION_FAILED: handle_failed})) as consumer:
        with db.uow(all_orgs=True) as uow:
            message = new_message(
                SESSION_FAILED, org_id=demo.org_id, session_id=hs, stage="training", reason="x"
            )
            uow.add_message(message)
            uow.commit()
        wait_for(
            lambda: [d.message_id for d in list_dead_letters(settings, dead)] == [message.message_id],
            "the dead letter",
        )
        broken.clear()  # the cause is fixed; support replays it from the page
        app = create_app(settings, db=db, blobs=LocalBlobStore(settings.blob_dir), checks={})
        support = sign_in(app, settings, demo.support)
        assert (
            support.post(f"/dead-letters/{dead}/replay", {"message_id": message.message_id}).status_code
            == 303
        )
        wait_for(lambda: consumer.stats["handled"] == 1, "the replayed message to be handled")
        assert support.post(f"/dead-letters/{dead}/replay").status_code == 303  # nothing left to replay
    assert calls == [message.message_id]
    assert list_dead_letters(settings, dead) == []
    assert "dead_letter.replayed" in support.get("/audit").get_data(as_text=True)


def test_heartbeats_show_the_work_in_hand_and_silence_as_gone(stack) -> None:  # type: ignore[no-untyped-def]
    settings, db, bus, demo = stack
    hs = make_session(db, demo, "training")
    inside, release = threading.Event(), threading.Event()

    def slow(message, *, uow):  # type: ignore[no-untyped-def]
        inside.set()
        release.wait(30)

    def beat() -> WorkerHeartbeat | None:
        with db.session(all_orgs=True) as s:
            return s.scalar(select(WorkerHeartbeat).where(WorkerHeartbeat.service == "ops"))

    app = create_app(settings, db=db, blobs=LocalBlobStore(settings.blob_dir), checks={})
    support = sign_in(app, settings, demo.support)
    with running(bus.consumer("ops", {SESSION_FAILED: slow})) as consumer:
        wait_for(lambda: beat() is not None, "a first heartbeat")
        with db.uow(all_orgs=True) as uow:
            uow.add_message(
                new_message(SESSION_FAILED, org_id=demo.org_id, session_id=hs, stage="training", reason="x")
            )
            uow.commit()
        assert inside.wait(30)
        wait_for(
            lambda: (b := beat()) is not None and b.current_session_id == hs,
            "a heartbeat naming the session in hand",
        )
        assert hs[:8] in support.get("/workers").get_data(as_text=True)
        release.set()
        wait_for(
            lambda: (b := beat()) is not None and b.handled == 1 and b.current_session_id is None,
            "the count to go up",
        )
        assert consumer.stats["handled"] == 1
    # Stopped: no more beats; after WORKER_GONE_SECONDS the page says gone.
    wait_for(
        lambda: 'class="worker gone"' in support.get("/workers").get_data(as_text=True),
        "the worker to show as gone",
        timeout=30,
    )


def test_the_launcher_prints_a_support_link_that_opens_ops(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from services import launcher

    settings = Settings(
        VAR_DIR=str(tmp_path / "var"), PORT=0, SECRET_KEY="launcher-test", OPS_CHECK_SECONDS=0.2
    )
    running_ = launcher.start(settings, only={"intake", "ops"}, seed=True)
    try:
        out = capsys.readouterr().out
        link = re.search(r"support\s+support@headshots\.example\s+(http://\S+/ops/invite/\S+)", out)
        assert link, out
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        with browser.open(link.group(1), timeout=10) as page:  # follows the redirect with the cookie
            assert page.status == 200 and page.url.endswith("/ops/") and b"Sessions" in page.read()
        assert any(t.name == "ops-background" and t.is_alive() for t in running_.threads)
        wait_for(lambda: _samples(running_.platform.db) > 0, "the ops worker's first queue sample")
    finally:
        running_.shutdown()


def _samples(db: Database) -> int:
    from libs.db import QueueSample

    with db.session(all_orgs=True) as s:
        return int(s.scalar(select(func.count()).select_from(QueueSample)) or 0)
