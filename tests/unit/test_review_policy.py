"""The policy worker's handler on a real SQLite unit of work: manual review, straight approval,
renewal, and a replayed message with no second effect."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from libs.contracts import MODELS_RETIRED, SESSION_APPROVED, SessionState
from libs.db import Database, PersonModel
from libs.db.demo import DemoData, seed_demo
from services.review.handlers import HANDLERS, handle_session_submitted
from tests.support.review import (
    make_person_model,
    make_session,
    outbox,
    session_state,
    set_org,
    submitted_message,
)

S = SessionState


@pytest.fixture(name="db")
def db_fixture(sqlite_url: str) -> Iterator[Database]:
    database = Database(sqlite_url)
    yield database
    database.dispose()


@pytest.fixture(name="demo")
def demo_fixture(db: Database) -> DemoData:
    return seed_demo(db)


def deliver(db: Database, org_id: str, session_id: str, message=None):
    message = message or submitted_message(org_id, session_id)
    with db.uow(org_id=org_id) as uow:
        HANDLERS[message.event](message, uow=uow, publish=uow.add_message)
        uow.commit()
    return message


def test_without_manual_review_the_session_is_queued_and_approved_automatically(db, demo: DemoData):
    sid = make_session(db, demo.org_id, demo.employees[0].id)
    deliver(db, demo.org_id, sid)
    assert session_state(db, demo.org_id, sid) == S.QUEUED
    [approved] = outbox(db, SESSION_APPROVED.routing_key, sid)
    assert approved["data"] == {"auto": True, "reviewer_id": None}
    assert approved["org_id"] == demo.org_id


def test_with_manual_review_the_session_waits_for_the_admin(db, demo: DemoData):
    set_org(db, demo.org_id, manual_review=True)
    sid = make_session(db, demo.org_id, demo.employees[0].id)
    deliver(db, demo.org_id, sid)
    assert session_state(db, demo.org_id, sid) == S.IN_REVIEW
    assert outbox(db, SESSION_APPROVED.routing_key) == []


def test_a_replayed_message_has_no_second_effect(db, demo: DemoData):
    sid = make_session(db, demo.org_id, demo.employees[0].id)
    message = deliver(db, demo.org_id, sid)
    deliver(db, demo.org_id, sid, message)
    deliver(db, demo.org_id, sid)  # a second submitted event for the same session, too
    assert session_state(db, demo.org_id, sid) == S.QUEUED
    assert len(outbox(db, SESSION_APPROVED.routing_key, sid)) == 1


def test_an_unknown_or_other_orgs_session_is_ignored(db, demo: DemoData):
    other = make_session(db, demo.other_org_id, demo.other_employee.id)
    message = submitted_message(demo.org_id, other)  # claims our org, names theirs
    with db.uow(org_id=demo.org_id) as uow:
        handle_session_submitted(message, uow=uow, publish=uow.add_message)
        uow.commit()
    assert session_state(db, demo.other_org_id, other) == S.SUBMITTED
    assert outbox(db, SESSION_APPROVED.routing_key) == []


def test_renewal_retires_the_persons_earlier_live_models_once(db, demo: DemoData):
    set_org(db, demo.org_id, renewal=True)
    bea, carl = demo.employees
    old = make_session(db, demo.org_id, bea.id, S.COMPLETED, age_minutes=60)
    live = make_person_model(db, demo.org_id, old)
    already = make_person_model(db, demo.org_id, old, retired=True)
    carls = make_person_model(db, demo.org_id, make_session(db, demo.org_id, carl.id, S.COMPLETED))
    new = make_session(db, demo.org_id, bea.id)
    message = deliver(db, demo.org_id, new)
    deliver(db, demo.org_id, new, message)

    [retired] = outbox(db, MODELS_RETIRED.routing_key)
    assert retired["data"] == {"person_model_ids": [live]}
    with db.session(org_id=demo.org_id) as s:
        assert s.get(PersonModel, live).retired_at is not None
        assert s.get(PersonModel, carls).retired_at is None
        assert s.get(PersonModel, already).retired_at is not None
    assert session_state(db, demo.org_id, new) == S.QUEUED


def test_without_renewal_earlier_models_stay(db, demo: DemoData):
    bea = demo.employees[0]
    live = make_person_model(db, demo.org_id, make_session(db, demo.org_id, bea.id, S.COMPLETED))
    deliver(db, demo.org_id, make_session(db, demo.org_id, bea.id))
    assert outbox(db, MODELS_RETIRED.routing_key) == []
    with db.session(org_id=demo.org_id) as s:
        assert s.get(PersonModel, live).retired_at is None
