"""The estimate a waiting page shows: medians of the measured stretches of recent sessions
(from the outbox timeline), what is left of the current stage, and the place in line."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from libs.contracts import (
    MODEL_TRAINED,
    PHOTOS_PROCESSED,
    SESSION_APPROVED,
    SESSION_COMPLETED,
    SessionState,
    new_message,
)
from libs.db import Database, HeadshotSession, OutboxMessage, utcnow
from libs.db.demo import DemoData, seed_demo
from libs.settings import Settings
from services.gateway.eta import measure, queue_position, remaining_seconds
from tests.support.gateway import new_session
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


def finished(db: Database, demo: DemoData, waiting: float, training: float, generating: float) -> None:
    """A completed session whose timeline took the given seconds per stretch."""
    bea = demo.employees[0]
    org = str(bea.org_id)
    sid = new_session(db, bea, S.COMPLETED)
    start = utcnow() - timedelta(hours=2)
    marks = [
        (SESSION_APPROVED, 0.0, {"auto": True, "reviewer_id": None}),
        (PHOTOS_PROCESSED, waiting, {"photo_ids": ["p"]}),
        (
            MODEL_TRAINED,
            waiting + training,
            {"person_model_id": "m", "engine": "studio", "seconds": training},
        ),
        (SESSION_COMPLETED, waiting + training + generating, {"headshot_count": 4}),
    ]
    with db.uow(org_id=org) as uow:
        for kind, at, data in marks:
            m = new_message(kind, org_id=org, session_id=sid, **data)
            uow.add_message(replace(m, occurred_at=start + timedelta(seconds=at)))
        hs = uow.session.get(HeadshotSession, sid)
        assert hs is not None
        hs.completed_at = start + timedelta(seconds=waiting + training + generating)
        uow.commit()


def test_medians_of_recent_sessions_per_stretch(db: Database, demo: DemoData) -> None:
    with db.session(all_orgs=True) as s:
        assert measure(s) == {}  # nothing measured yet: the page shows no estimate
    finished(db, demo, 30, 200, 500)
    finished(db, demo, 50, 300, 700)
    finished(db, demo, 70, 900, 600)
    with db.session(all_orgs=True) as s:
        assert measure(s) == {"waiting": 50.0, "training": 300.0, "generating": 600.0}
        assert s.query(OutboxMessage).count() == 12


def test_what_is_left_depends_on_the_stage_and_its_progress() -> None:
    m = {"waiting": 60.0, "training": 300.0, "generating": 600.0}
    assert remaining_seconds(S.GENERATING, 3, 4, m, 9999) == 150.0
    assert remaining_seconds(S.TRAINING, 0, 0, m, 100) == 200.0 + 600.0
    assert remaining_seconds(S.TRAINING, 0, 0, m, 1000) == 30.0 + 600.0  # overrun: a tenth kept in hand
    assert remaining_seconds(S.QUEUED, 0, 0, m, 0) == 960.0
    assert remaining_seconds(S.IN_REVIEW, 0, 0, m, 0) is None  # a person decides: no estimate
    assert remaining_seconds(S.GENERATING, 1, 4, {"waiting": 60.0}, 0) is None
    assert remaining_seconds("nonsense", 0, 0, m, 0) is None


def test_queue_position_counts_earlier_queued_sessions_of_every_org(
    settings: Settings, db: Database, demo: DemoData
) -> None:
    bea, carl = demo.employees
    first = new_session(db, demo.other_employee, S.QUEUED)
    second = new_session(db, carl, S.QUEUED)
    mine = new_session(db, bea, S.QUEUED)
    new_session(db, carl, S.TRAINING)  # already started: not in line
    with db.session(all_orgs=True) as s:
        positions = [queue_position(s, s.get(HeadshotSession, sid)) for sid in (first, second, mine)]
    assert positions == [1, 2, 3]

    finished(db, demo, 60, 300, 600)
    gw = GatewayUnderTest.build(settings, db)
    page = gw.page(mine, user=bea)
    follow(page)
    [(_name, state)] = received(page)
    assert state["queue_position"] == 3
    assert state["durations"] == {"waiting": 60.0, "training": 300.0, "generating": 600.0}
    assert 900 <= state["eta_seconds"] <= 960
