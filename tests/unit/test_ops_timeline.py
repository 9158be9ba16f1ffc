"""Timeline assembly: events in order with who handled them, stages with their durations, support
actions, photo decisions; and a chart that draws what it is given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from libs.contracts import (
    MODEL_TRAINED,
    PHOTOS_PROCESSED,
    SESSION_APPROVED,
    SESSION_FAILED,
    SESSION_PROGRESS,
    SESSION_SUBMITTED,
    new_message,
)
from libs.db import AuditLog, Database, OutboxMessage, Photo, ProcessedMessage
from libs.db.demo import DemoData
from services.ops.charts import line_chart
from services.ops.timeline import assemble, load_timeline
from tests.support.ops import (  # noqa: F401 (fixtures)
    SUBMITTED,
    demo_fixture,
    make_session,
    ops_db_fixture,
    ops_settings_fixture,
)

T0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def _row(event, at: datetime, sent: bool = True, **data) -> OutboxMessage:  # type: ignore[no-untyped-def]
    m = new_message(event, org_id="org", session_id="hs", **data)
    return OutboxMessage(
        message_id=m.message_id,
        routing_key=m.routing_key,
        org_id="org",
        session_id="hs",
        body=m.to_json(),
        created_at=at,
        sent_at=at + timedelta(milliseconds=5) if sent else None,
        last_error=None if sent else "broker unreachable",
    )


def test_events_stages_and_actions_in_order() -> None:
    submitted = _row(SESSION_SUBMITTED, T0, **SUBMITTED)
    approved = _row(SESSION_APPROVED, T0 + timedelta(seconds=30), auto=True, reviewer_id=None)
    progress = _row(SESSION_PROGRESS, T0 + timedelta(seconds=40), stage="preprocessing", done=1, total=4)
    processed = _row(PHOTOS_PROCESSED, T0 + timedelta(seconds=100), photo_ids=["a", "b"])
    failed = _row(
        SESSION_FAILED, T0 + timedelta(seconds=400), sent=False, stage="training", reason="GPU out of memory"
    )
    handled = [
        ProcessedMessage(
            consumer="notification.session.submitted",
            message_id=submitted.message_id,
            processed_at=T0 + timedelta(seconds=2),
        ),
        ProcessedMessage(
            consumer="review.session.submitted",
            message_id=submitted.message_id,
            processed_at=T0 + timedelta(seconds=1),
        ),
    ]
    retried = AuditLog(
        action="session.retried",
        target="hs",
        actor_id="u",
        detail={"to": "queued"},
        created_at=T0 + timedelta(seconds=500),
    )
    photos = [Photo(id="p1", decision="dropped", decision_reason="eyes closed", quality_score=0.2)]

    t = assemble(
        [failed, submitted, approved, progress, processed], handled, [retried], photos, "GPU out of memory"
    )

    assert [e.title for e in t.entries] == [
        SESSION_SUBMITTED.routing_key,
        SESSION_APPROVED.routing_key,
        SESSION_PROGRESS.routing_key,
        PHOTOS_PROCESSED.routing_key,
        SESSION_FAILED.routing_key,
        "session.retried",
    ]
    first = t.entries[0]
    assert [h.consumer for h in first.handled_by] == [
        "review.session.submitted",
        "notification.session.submitted",
    ]
    assert first.detail == "4 photos, 1 styles, executive"
    assert (
        t.entries[4].publish_error == "broker unreachable"
        and t.entries[4].detail == "GPU out of memory at training"
    )
    assert [(s.state, s.seconds(T0)) for s in t.stages[:-1]] == [
        ("submitted", 30.0),
        ("queued", 10.0),
        ("preprocessing", 60.0),
        ("training", 300.0),
        ("failed", 100.0),
    ]
    assert t.stages[-1].state == "queued" and t.stages[-1].ended is None
    assert t.stages[-1].seconds(T0 + timedelta(seconds=560)) == 60.0
    assert t.photos[0].reason == "eyes closed" and t.failure_reason == "GPU out of memory"


def test_model_trained_starts_generating_and_unknown_bodies_do_not_break_it() -> None:
    trained = _row(MODEL_TRAINED, T0, person_model_id="m", engine="studio", seconds=12.4)
    broken = OutboxMessage(
        message_id="x",
        routing_key=SESSION_PROGRESS.routing_key,
        org_id="o",
        session_id="hs",
        body="not json",
        created_at=T0 + timedelta(seconds=1),
    )
    t = assemble([trained, broken], [], [], [])
    assert t.entries[0].detail == "studio model in 12 s" and t.entries[0].state == "generating"
    assert t.entries[1].state is None and t.entries[1].detail == ""


def test_load_timeline_reads_one_session_only(ops_db: Database, demo: DemoData) -> None:
    mine = make_session(
        ops_db,
        demo,
        "queued",
        events=[(SESSION_SUBMITTED, SUBMITTED), (SESSION_APPROVED, {"auto": True, "reviewer_id": None})],
    )
    make_session(ops_db, demo, "submitted", events=[(SESSION_SUBMITTED, SUBMITTED)], user=demo.other_employee)
    with ops_db.session(all_orgs=True) as s:
        from libs.db import HeadshotSession

        hs = s.get(HeadshotSession, mine)
        assert hs is not None
        t = load_timeline(s, hs)
    assert [e.title for e in t.entries] == [SESSION_SUBMITTED.routing_key, SESSION_APPROVED.routing_key]
    assert [s.state for s in t.stages] == ["submitted", "queued"]


def test_chart_scales_lines_into_the_plot() -> None:
    end = T0 + timedelta(hours=1)
    chart = line_chart({"a": [(T0, 0), (end, 7)], "b": [(T0 + timedelta(minutes=30), 3)]}, start=T0, end=end)
    assert chart.top == 10
    a = chart.series[0]
    assert a.name == "a" and a.last == 7 and a.peak == 7
    (x0, y0), (x1, y1) = [tuple(map(float, p.split(","))) for p in a.points.split()]
    assert x0 == chart.plot_left and y0 == chart.plot_bottom  # 0 at the start: bottom-left
    assert x1 == chart.width - 10 and chart.plot_top < y1 < chart.plot_bottom
    assert line_chart({}, start=T0, end=end).series == []
    assert line_chart({"idle": [(T0, 0), (end, 0)]}, start=T0, end=end).series == []  # flat zero: not drawn
