"""The policy worker through its real consumer queue (memory:// + SQLite and RabbitMQ + PostgreSQL):
a submitted session is queued with exactly one ``session.approved`` even when the broker delivers
the message twice, or waits in review when the org asks for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from libs.contracts import SESSION_APPROVED, SessionState
from libs.db import Database
from libs.db.demo import DemoData, seed_demo
from libs.messaging import Bus, Publisher
from libs.messaging.testing import running, wait_for
from libs.settings import Settings
from services.review.handlers import HANDLERS
from tests.support.review import make_session, outbox, session_state, set_org, submitted_message

pytestmark = pytest.mark.integration


@pytest.fixture(name="db")
def db_fixture(backend: Settings) -> Iterator[Database]:
    database = Database(backend.database_url)
    yield database
    database.dispose()


@pytest.fixture(name="bus")
def bus_fixture(backend: Settings, db: Database) -> Bus:
    bus = Bus(backend, db)
    bus.declare()
    return bus


def test_a_redelivered_submission_is_approved_exactly_once(backend: Settings, db: Database, bus: Bus):
    demo: DemoData = seed_demo(db)
    sid = make_session(db, demo.org_id, demo.employees[0].id)
    message = submitted_message(demo.org_id, sid)
    with running(bus.consumer("review", HANDLERS)) as consumer:
        with Publisher(backend) as publisher:
            publisher.publish(message)
            publisher.publish(message)  # the broker's at-least-once: the same message again
        wait_for(lambda: consumer.stats["handled"] + consumer.stats["duplicate"] == 2, "both deliveries")
        assert (consumer.stats["handled"], consumer.stats["duplicate"]) == (1, 1)
    assert session_state(db, demo.org_id, sid) == SessionState.QUEUED
    [approved] = outbox(db, SESSION_APPROVED.routing_key, sid)
    assert approved["data"] == {"auto": True, "reviewer_id": None}


def test_with_manual_review_the_worker_leaves_the_session_in_review(
    backend: Settings, db: Database, bus: Bus
):
    demo = seed_demo(db)
    set_org(db, demo.org_id, manual_review=True)
    sid = make_session(db, demo.org_id, demo.employees[0].id)
    with running(bus.consumer("review", HANDLERS)) as consumer:
        with Publisher(backend) as publisher:
            publisher.publish(submitted_message(demo.org_id, sid))
        wait_for(lambda: consumer.stats["handled"] == 1, "the submission to be handled")
    assert session_state(db, demo.org_id, sid) == SessionState.IN_REVIEW
    assert outbox(db, SESSION_APPROVED.routing_key) == []
