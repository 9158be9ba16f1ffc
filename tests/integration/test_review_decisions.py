"""Two admins deciding the same session at once, on SQLite and on PostgreSQL: exactly one decision
wins, the other is told it was already decided, and exactly one event is written."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from libs.contracts import SESSION_APPROVED, SESSION_REJECTED, SessionState
from libs.db import Database, Role, User
from libs.db.demo import seed_demo
from libs.settings import Settings
from services.review import decisions
from services.review.decisions import Approve, Reject, Reviewer
from services.review.errors import AlreadyDecided
from tests.support.review import make_session, outbox, session_state

pytestmark = pytest.mark.integration


@pytest.fixture(name="db")
def db_fixture(backend: Settings) -> Iterator[Database]:
    database = Database(backend.database_url)
    yield database
    database.dispose()


def decide_at_once(db: Database, org_id: str, commands: list[tuple[Reviewer, object]]) -> list[str]:
    """Run each decision in its own thread and transaction, released together; their outcomes."""
    barrier = threading.Barrier(len(commands))
    outcomes: list[str] = ["?"] * len(commands)

    def run(i: int, reviewer: Reviewer, command: object) -> None:
        with db.uow(org_id=org_id) as uow:
            barrier.wait(timeout=30)
            try:
                if isinstance(command, Approve):
                    decisions.approve(uow, reviewer, command)
                else:
                    decisions.reject(uow, reviewer, command)  # type: ignore[arg-type]
                uow.commit()
                outcomes[i] = "won"
            except AlreadyDecided:
                outcomes[i] = "already decided"

    threads = [threading.Thread(target=run, args=(i, r, c)) for i, (r, c) in enumerate(commands)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return outcomes


def test_two_admins_deciding_at_once_give_one_decision_and_one_event(db: Database):
    demo = seed_demo(db)
    with db.uow(org_id=demo.org_id) as uow:
        second = User(org_id=demo.org_id, email="second@acme.example", role=Role.ORG_ADMIN.value)
        uow.session.add(second)
        uow.commit()
    first_admin = Reviewer(demo.admin.id, demo.org_id)
    second_admin = Reviewer(second.id, demo.org_id)

    both_approve = make_session(db, demo.org_id, demo.employees[0].id, SessionState.IN_REVIEW)
    outcomes = decide_at_once(
        db, demo.org_id, [(first_admin, Approve(both_approve)), (second_admin, Approve(both_approve))]
    )
    assert sorted(outcomes) == ["already decided", "won"]
    assert len(outbox(db, SESSION_APPROVED.routing_key, both_approve)) == 1

    approve_or_reject = make_session(db, demo.org_id, demo.employees[1].id, SessionState.IN_REVIEW)
    outcomes = decide_at_once(
        db,
        demo.org_id,
        [(first_admin, Approve(approve_or_reject)), (second_admin, Reject(approve_or_reject, "Too dark"))],
    )
    assert sorted(outcomes) == ["already decided", "won"]
    events = outbox(db, SESSION_APPROVED.routing_key, approve_or_reject) + outbox(
        db, SESSION_REJECTED.routing_key, approve_or_reject
    )
    assert len(events) == 1
    winner = SessionState.QUEUED if outcomes[0] == "won" else SessionState.REJECTED
    assert session_state(db, demo.org_id, approve_or_reject) == winner
