"""Intake's event handlers with a real SQLite unit of work and no broker."""

from __future__ import annotations

import pytest

from libs.contracts import (
    SESSION_COMPLETED,
    SESSION_REJECTED,
    SUBSCRIPTIONS,
    IllegalTransition,
    SessionState,
    new_message,
)
from libs.db import Database, HeadshotSession
from libs.db.demo import DemoData
from services.intake.handlers import HANDLERS
from tests.support.intake import (
    add_photo,
)

S = SessionState


def session_in(db: Database, demo: DemoData, *states: S, **info) -> str:
    """A session of Bea's, walked through ``states`` by the legal transitions."""
    with db.uow(org_id=demo.org_id) as uow:
        session = HeadshotSession(
            org_id=demo.org_id,
            user_id=demo.employees[0].id,
            package_id="executive",
            state=S.ONBOARDING.value,
            **info,
        )
        uow.session.add(session)
        for state in states:
            session.move_to(state)
        uow.commit()
        return session.id


def rejected(session_id: str, org_id: str):
    return new_message(
        SESSION_REJECTED, org_id=org_id, session_id=session_id, reviewer_id="admin-1", reason="Too dark"
    )


def completed(session_id: str, org_id: str):
    return new_message(SESSION_COMPLETED, org_id=org_id, session_id=session_id, headshot_count=12)


def run(db: Database, message) -> HeadshotSession:
    # As the consumer does: the table picks the handler, in a unit of work scoped to the message's
    # org that commits after it.
    with db.uow(org_id=message.org_id) as uow:
        HANDLERS[message.event](message, uow=uow)
        uow.commit()
    with db.session(all_orgs=True) as s:
        session = s.get(HeadshotSession, message.session_id)
        _ = session.photos if session else None
        return session


def test_the_table_handles_exactly_the_events_intake_subscribes_to():
    # The worker's queues are derived from the subscriptions; each event's effect is checked below,
    # every message going through the table as the consumer sends it.
    assert set(HANDLERS) == set(SUBSCRIPTIONS["intake"])


@pytest.mark.parametrize("path", [(S.SUBMITTED, S.IN_REVIEW, S.REJECTED), (S.SUBMITTED, S.IN_REVIEW)])
def test_a_rejected_session_goes_back_to_onboarding_keeping_its_photos(db: Database, demo: DemoData, path):
    sid = session_in(db, demo, *path, full_name="Bea")
    add_photo(db, demo.org_id, sid)
    session = run(db, rejected(sid, demo.org_id))
    assert session.state == S.ONBOARDING
    assert len(session.photos) == 1
    assert session.full_name == "Bea"


def test_a_replayed_rejection_changes_nothing(db: Database, demo: DemoData):
    sid = session_in(db, demo, S.SUBMITTED, S.IN_REVIEW, S.REJECTED)
    message = rejected(sid, demo.org_id)
    run(db, message)
    assert run(db, message).state == S.ONBOARDING


def test_a_rejection_of_a_deleted_session_is_ignored(db: Database, demo: DemoData):
    sid = session_in(db, demo, S.DELETED)
    assert run(db, rejected(sid, demo.org_id)).state == S.DELETED


def test_a_rejection_of_a_completed_session_is_an_error(db: Database, demo: DemoData):
    # Never expected: raising lets the consumer retry and then dead-letter it for ops to see.
    sid = session_in(db, demo, S.SUBMITTED, S.QUEUED, S.PREPROCESSING, S.TRAINING, S.GENERATING, S.COMPLETED)
    with pytest.raises(IllegalTransition):
        run(db, rejected(sid, demo.org_id))


def test_a_message_naming_another_org_finds_no_session(db: Database, demo: DemoData):
    sid = session_in(db, demo, S.SUBMITTED, S.IN_REVIEW, S.REJECTED)
    run(db, rejected(sid, demo.other_org_id))
    with db.session(all_orgs=True) as s:
        assert s.get(HeadshotSession, sid).state == S.REJECTED


def test_completion_erases_personal_info_once(db: Database, demo: DemoData):
    sid = session_in(
        db,
        demo,
        *(S.SUBMITTED, S.QUEUED, S.PREPROCESSING, S.TRAINING, S.GENERATING, S.COMPLETED),
        full_name="Bea Employee",
        gender="female",
        eye_color="brown",
        glasses="no_glasses",
    )
    session = run(db, completed(sid, demo.org_id))
    assert (session.full_name, session.gender, session.eye_color, session.glasses) == (None, None, None, None)
    erased_at = session.personal_info_erased_at
    assert erased_at is not None
    again = run(db, completed(sid, demo.org_id))
    assert again.personal_info_erased_at == erased_at
