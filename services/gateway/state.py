"""What a page is told at once when it starts listening (or asks again): the session's state.

{"id": 1234,                          # newest outbox id of the session: the page's cursor
 "state": "generating", "stage": "Creating your headshots",
 "progress": {"done": 3, "total": 12},
 "headshots": [{"id": "…", "style": "navy:suit"}, ...],
 "queue_position": null,              # 1, 2, ... while queued
 "durations": {"waiting": 40.0, "training": 300.0, "generating": 600.0},
 "eta_seconds": 450.0,                # null when there is nothing to go on
 "reason": null}                      # why it failed, or why the admin sent it back
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from libs.contracts import SESSION_FAILED, SESSION_REJECTED, SessionState, stage_label
from libs.db import Database, Headshot, HeadshotSession
from services.gateway.access import Listener
from services.gateway.eta import StageTimes, queue_position, remaining_seconds, seconds_since
from services.gateway.timeline import last_event_id, latest_reason

S = SessionState


def snapshot(db: Database, listener: Listener, stage_times: StageTimes) -> dict[str, Any] | None:
    """The session's state now, or None when it is gone."""
    with db.session(org_id=listener.org_id) as db_session:
        # The cursor first: each read sees what was committed when it ran (PostgreSQL's read
        # committed, SQLite's reads outside a transaction), so a worker's commit may fall between
        # two of them. Read after the cursor, the state includes every event up to it, and an
        # event committed in between has a later id: the page applies it when it comes. Read the
        # other way round, the page would take that event for one already shown and stay behind.
        cursor = last_event_id(db_session, listener.session_id)
        hs = db_session.get(HeadshotSession, listener.session_id)
        if hs is None:
            return None
        shots = db_session.execute(
            select(Headshot.id, Headshot.style_id)
            .where(Headshot.session_id == hs.id)
            .order_by(Headshot.position, Headshot.index_in_style)
        ).all()
        reason = None
        if hs.state == S.FAILED:
            reason = hs.failure_reason or latest_reason(db_session, hs.id, SESSION_FAILED.routing_key)
        elif hs.state in (S.REJECTED, S.ONBOARDING):
            reason = latest_reason(db_session, hs.id, SESSION_REJECTED.routing_key)
        state, done, total, updated_at = hs.state, hs.progress_done, hs.progress_total, hs.updated_at
    position = None
    if state == S.QUEUED:
        with db.session(all_orgs=True) as db_session:  # a count across orgs: no row is shown
            hs_any = db_session.get(HeadshotSession, listener.session_id)
            position = queue_position(db_session, hs_any) if hs_any is not None else None
    durations = stage_times.get()
    return {
        "id": cursor,
        "state": state,
        "stage": stage_label(state),
        "progress": {"done": done, "total": total},
        "headshots": [{"id": hid, "style": style} for hid, style in shots],
        "queue_position": position,
        "durations": durations,
        "eta_seconds": remaining_seconds(state, done, total, durations, seconds_since(updated_at)),
        "reason": reason,
    }
