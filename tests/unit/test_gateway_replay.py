"""Nothing missed: every pushed event carries its outbox id; a page that comes back with the last
id it saw gets what came after, in order, before live events; a fresh page gets the state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import select

from libs.contracts import (
    HEADSHOT_GENERATED,
    MODEL_TRAINED,
    PHOTOS_PROCESSED,
    SESSION_APPROVED,
    SESSION_FAILED,
    SessionState,
)
from libs.db import Database, OutboxMessage
from libs.db.demo import DemoData, seed_demo
from libs.messaging import Bus, Publisher
from libs.messaging.testing import wait_for
from libs.settings import Settings
from tests.support.gateway import event, new_session, record
from tests.support.gateway_app import GatewayUnderTest, follow, received

S = SessionState


@pytest.fixture(name="db")
def db_fixture(sqlite_url: str) -> Iterator[Database]:
    database = Database(sqlite_url)
    yield database
    database.dispose()


@pytest.fixture(name="demo")
def demo_fixture(db: Database) -> DemoData:
    return seed_demo(db)


def _steps(db: Database, org: str, sid: str) -> None:
    record(db, event(SESSION_APPROVED, org, sid, auto=True, reviewer_id=None), state=S.QUEUED)
    record(db, event(PHOTOS_PROCESSED, org, sid, photo_ids=["p"]), state=S.TRAINING)
    record(
        db,
        event(MODEL_TRAINED, org, sid, person_model_id="m", engine="studio", seconds=2.0),
        state=S.GENERATING,
    )
    for done in (1, 2):
        record(
            db,
            event(
                HEADSHOT_GENERATED, org, sid, headshot_id=f"h{done}", style="navy:suit", done=done, total=2
            ),
            progress=(done, 2),
        )


def _ids(db: Database, sid: str) -> list[int]:
    with db.session(all_orgs=True) as s:
        return list(
            s.scalars(
                select(OutboxMessage.id).where(OutboxMessage.session_id == sid).order_by(OutboxMessage.id)
            )
        )


def test_a_returning_page_gets_what_it_missed_in_order_and_nothing_of_others(
    settings: Settings, db: Database, demo: DemoData
) -> None:
    bea, carl = demo.employees
    sid, other = new_session(db, bea), new_session(db, carl)
    org = str(bea.org_id)
    _steps(db, org, sid)
    _steps(db, org, other)  # interleaved ids of another session
    Bus(settings, db).relay(wake_after_commits=False).run_once()
    ids = _ids(db, sid)

    gw = GatewayUnderTest.build(settings, db)
    page = gw.page(sid, user=bea)
    assert follow(page, last_id=ids[1]) == {"ok": True}
    got = received(page)
    assert [name for name, _ in got] == ["event"] * 3
    assert [payload["id"] for _, payload in got] == ids[2:]
    assert [payload["type"] for _, payload in got] == [
        MODEL_TRAINED.routing_key,
        HEADSHOT_GENERATED.routing_key,
        HEADSHOT_GENERATED.routing_key,
    ]
    assert got[-1][1]["data"] == {"headshot_id": "h2", "style": "navy:suit", "done": 2, "total": 2}

    fresh = gw.page(sid, user=bea)
    follow(fresh)
    [(name, state)] = received(fresh)
    assert name == "state"
    assert state["id"] == ids[-1]  # the cursor for its next reconnection
    assert (state["state"], state["progress"]) == ("generating", {"done": 2, "total": 2})


def test_committed_rows_are_replayed_even_before_the_relay_marks_them_and_a_long_absence_gets_the_state(
    settings: Settings, db: Database, demo: DemoData, monkeypatch: pytest.MonkeyPatch
) -> None:
    bea = demo.employees[0]
    sid = new_session(db, bea)
    _steps(db, str(bea.org_id), sid)
    gw = GatewayUnderTest.build(settings, db)
    page = gw.page(sid, user=bea)
    # Not marked sent yet: the relay may have published them already (they went by live before
    # this page joined), so they are replayed; a later live copy is dropped by the page.
    follow(page, last_id=0)
    assert [p["id"] for _n, p in received(page)] == _ids(db, sid)

    monkeypatch.setattr("services.gateway.rooms.MAX_REPLAY", 2)
    again = gw.page(sid, user=bea)
    follow(again, last_id=0)
    assert [name for name, _ in received(again)] == ["state"]


def test_live_events_carry_their_outbox_id_from_the_relay_or_looked_up(
    settings: Settings, db: Database, demo: DemoData
) -> None:
    bea = demo.employees[0]
    sid = new_session(db, bea, S.QUEUED)
    gw = GatewayUnderTest.build(settings, db)
    gw.gateway.listener.start()
    try:
        assert gw.gateway.listener.wait_ready(10)
        page = gw.page(sid, user=bea)
        follow(page)
        assert [name for name, _ in received(page)] == ["state"]
        org = str(bea.org_id)
        record(db, event(PHOTOS_PROCESSED, org, sid, photo_ids=["p"]), state=S.TRAINING)
        Bus(settings, db).relay(wake_after_commits=False).run_once()
        got: list = []
        wait_for(lambda: got.extend(received(page)) or got, "the live event")
        assert [(n, p["id"], p["type"]) for n, p in got] == [
            ("event", _ids(db, sid)[0], PHOTOS_PROCESSED.routing_key)
        ]

        # Published without the relay's header (an older relay): the id is looked up by message_id.
        message = event(MODEL_TRAINED, org, sid, person_model_id="m", engine="studio", seconds=1.0)
        record(db, message, state=S.GENERATING)
        with Publisher(settings) as publisher:
            publisher.publish(message)
        wait_for(lambda: got.extend(received(page)) or len(got) == 2, "the event without a header")
        assert got[1][1]["id"] == _ids(db, sid)[1]
    finally:
        gw.gateway.listener.stop()


def test_a_worker_commit_between_the_states_reads_is_never_taken_for_an_event_already_shown(
    settings: Settings, db: Database, demo: DemoData
) -> None:
    """Each read of the state sees what was committed when it ran: a failure committed right after
    the session's row was read (still generating) must not be inside the page's cursor, or the
    page drops the failure's event as already shown and waits forever."""
    carl = demo.employees[1]
    org = str(carl.org_id)
    sid = new_session(db, carl, S.GENERATING)
    failed = event(SESSION_FAILED, org, sid, stage="generating", reason="The model could not be trained.")
    committed: list[bool] = []

    def fail_once_the_row_is_read(_conn, _cursor, statement: str, *_args) -> None:
        if (
            not committed
            and statement.lstrip().upper().startswith("SELECT")
            and "FROM headshot_sessions" in statement
        ):
            committed.append(True)
            record(db, failed, state=S.FAILED)  # another connection, while the state is being read

    gw = GatewayUnderTest.build(settings, db)
    page = gw.page(sid, user=carl)
    sqlalchemy_event.listen(db.engine, "after_cursor_execute", fail_once_the_row_is_read)
    try:
        assert follow(page, last_id=None) == {"ok": True}
    finally:
        sqlalchemy_event.remove(db.engine, "after_cursor_execute", fail_once_the_row_is_read)
    assert committed, "the failure was never committed between the reads"
    [(name, state)] = received(page)
    assert name == "state"
    [failed_id] = _ids(db, sid)
    # Either the state shows the failure, or the cursor is before it (the event is applied when it comes).
    assert state["state"] == "failed" or state["id"] < failed_id, state
