"""Stuck detection: a session idle in a stage past its limit is re-queued once with the event that
starts the stage, then flagged if still idle after another limit; the clock is injected."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from libs.contracts import PHOTOS_PROCESSED, SESSION_APPROVED, SESSION_PROGRESS, SESSION_SUBMITTED
from libs.db import Database, Photo, StuckCheck
from libs.db.demo import DemoData
from libs.settings import Settings
from services.ops.stuck import check_stuck
from tests.support.ops import (  # noqa: F401 (fixtures)
    SUBMITTED,
    audit_actions,
    demo_fixture,
    make_session,
    ops_db_fixture,
    ops_settings_fixture,
    outbox_for,
)

HOUR = timedelta(hours=1)


def test_a_queued_session_with_no_message_is_requeued_once_then_flagged(
    ops_db: Database, ops_settings: Settings, demo: DemoData
) -> None:
    limit = ops_settings.STUCK_QUEUED_SECONDS
    hs = make_session(ops_db, demo, "queued", idle=timedelta(seconds=limit + 60))
    fresh = make_session(ops_db, demo, "queued")
    now = datetime.now(UTC)

    first = check_stuck(ops_db, ops_settings, now=now)
    assert first.requeued == [hs] and first.flagged == []
    [approved] = outbox_for(ops_db, hs, SESSION_APPROVED.routing_key)
    assert json.loads(approved.body)["data"] == {"auto": True, "reviewer_id": None}
    assert outbox_for(ops_db, fresh) == []

    # Within one limit of the re-queue nothing more happens (the message may still be on its way).
    again = check_stuck(ops_db, ops_settings, now=now + timedelta(seconds=limit / 2))
    assert again.requeued == [] and again.flagged == []

    later = check_stuck(ops_db, ops_settings, now=now + timedelta(seconds=limit + 60))
    assert later.flagged == [hs]
    assert later.requeued == [fresh]  # its own limit has passed by now
    assert len(outbox_for(ops_db, hs, SESSION_APPROVED.routing_key)) == 1  # re-queued once only
    assert audit_actions(ops_db, hs) == ["session.requeued_by_stuck_check", "session.flagged_stuck"]

    # Flagged stays flagged without more noise.
    assert hs not in check_stuck(ops_db, ops_settings, now=now + 3 * HOUR).flagged


def test_progress_events_keep_a_long_stage_alive(
    ops_db: Database, ops_settings: Settings, demo: DemoData
) -> None:
    limit = ops_settings.STUCK_GENERATING_SECONDS
    hs = make_session(ops_db, demo, "generating", idle=timedelta(seconds=limit * 2))
    with ops_db.uow(all_orgs=True) as uow:  # a headshot came out a minute ago: alive
        from libs.contracts import new_message

        uow.add_message(
            new_message(
                SESSION_PROGRESS, org_id=demo.org_id, session_id=hs, stage="generating", done=3, total=9
            )
        )
        uow.commit()
    report = check_stuck(ops_db, ops_settings, now=datetime.now(UTC) + timedelta(seconds=60))
    assert report.requeued == [] and report.flagged == []


def test_each_stage_restarts_with_its_own_event(
    ops_db: Database, ops_settings: Settings, demo: DemoData
) -> None:
    long_ago = timedelta(days=10)
    submitted = make_session(
        ops_db, demo, "submitted", events=[(SESSION_SUBMITTED, SUBMITTED)], idle=long_ago
    )
    training = make_session(ops_db, demo, "training", idle=long_ago)
    with ops_db.uow(all_orgs=True) as uow:
        for decision in ("kept", "dropped", "kept"):
            uow.session.add(
                Photo(
                    org_id=demo.org_id,
                    session_id=training,
                    original_key="o",
                    clean_key="c",
                    width=1,
                    height=1,
                    decision=decision,
                )
            )
        uow.commit()
    review = make_session(ops_db, demo, "in_review", idle=long_ago)

    report = check_stuck(ops_db, ops_settings, now=datetime.now(UTC))

    assert sorted(report.requeued) == sorted([submitted, training])
    assert report.flagged == [review]  # a person decides: never re-published, only flagged
    assert len(outbox_for(ops_db, submitted, SESSION_SUBMITTED.routing_key)) == 2
    [processed] = outbox_for(ops_db, training, PHOTOS_PROCESSED.routing_key)
    assert len(json.loads(processed.body)["data"]["photo_ids"]) == 2  # the kept photos


def test_a_session_that_moved_on_starts_a_fresh_check(
    ops_db: Database, ops_settings: Settings, demo: DemoData
) -> None:
    hs = make_session(ops_db, demo, "queued", idle=timedelta(days=1))
    check_stuck(ops_db, ops_settings, now=datetime.now(UTC))
    with ops_db.uow(all_orgs=True) as uow:
        from libs.db import HeadshotSession

        row = uow.session.get(HeadshotSession, hs)
        assert row is not None
        row.move_to("preprocessing")
        uow.commit()
    from tests.support.ops import backdate

    backdate(ops_db, hs, timedelta(days=1))
    report = check_stuck(ops_db, ops_settings, now=datetime.now(UTC))
    assert report.requeued == [hs]  # a new stage: re-queued once more before any flag
    with ops_db.session(all_orgs=True) as s:
        check = s.get(StuckCheck, hs)
        assert check is not None and check.state == "preprocessing" and check.flagged_at is None


def test_a_failed_or_trained_session_is_no_longer_stuck(
    ops_db: Database, ops_settings: Settings, demo: DemoData
) -> None:
    from libs.contracts import SESSION_FAILED, new_message
    from services.ops.handlers import handle_session_failed

    hs = make_session(ops_db, demo, "in_review", idle=timedelta(days=10))
    assert check_stuck(ops_db, ops_settings, now=datetime.now(UTC)).flagged == [hs]
    message = new_message(SESSION_FAILED, org_id=demo.org_id, session_id=hs, stage="in_review", reason="x")
    with ops_db.uow(org_id=demo.org_id) as uow:
        handle_session_failed(message, uow=uow)
        uow.commit()
    with ops_db.session(all_orgs=True) as s:
        assert s.get(StuckCheck, hs) is None
