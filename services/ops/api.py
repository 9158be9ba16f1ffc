"""The ops JSON API, twin of the pages (flask-smorest; the OpenAPI document is built from
schemas.py and served at /ops/api/v1/openapi.json). Support staff only, like the pages.

    GET /ops/api/v1/sessions?state=failed&org=<org id>&older_than_hours=1&q=<id>&page=1
    -> {"sessions": [{"id": "…", "org_name": "Acme", "state": "failed", …}], "total": 1,
        "page": 1, "pages": 1, "counts": {"failed": 1, "queued": 0, …}}
    POST /ops/api/v1/sessions/<id>/retry                      (X-CSRF-Token: <csrf_token of the list>)
    POST /ops/api/v1/sessions/<id>/fail    {"reason": "stuck on a dead GPU node"}
    POST /ops/api/v1/sessions/<id>/delete  {"confirm": true}
    -> the session: {"id": "…", "state": "queued", …}; 409 when its state refuses the action
    GET /ops/api/v1/sessions/<session id>/timeline
    -> {"session": {…}, "entries": [{"at": "…", "title": "session.submitted", "handled_by": […]}],
        "stages": [{"state": "queued", "seconds": 12.5, …}], "photos": [...], "failure_reason": null}
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask_smorest import Blueprint

from libs.db import HeadshotSession
from libs.web import ApiError, get_blobs, get_db, get_settings
from services.ops import actions
from services.ops.access import require_support
from services.ops.queries import SessionFilter, SessionRow, find_sessions, session_row
from services.ops.schemas import (
    DeleteSchema,
    ErrorSchema,
    FailSchema,
    SessionFilterSchema,
    SessionPageSchema,
    SessionRowSchema,
    TimelineSchema,
)
from services.ops.timeline import load_timeline

blp = Blueprint(
    "ops_api",
    __name__,
    url_prefix="/api/v1/sessions",
    description="Headshot sessions across every organization (support staff only).",
)


@blp.get("")
@blp.arguments(SessionFilterSchema, location="query", as_kwargs=False)
@blp.response(200, SessionPageSchema)
@blp.alt_response(400, schema=ErrorSchema, description="A filter value is not valid.")
@blp.alt_response(403, schema=ErrorSchema, description="Not support staff.")
def list_sessions(f: SessionFilter) -> Any:
    """Sessions across organizations, newest change first, with counts per state."""
    with get_db().session(all_orgs=True) as db_session:
        return find_sessions(db_session, f, now=datetime.now(UTC))


@blp.get("/<session_id>/timeline")
@blp.response(200, TimelineSchema)
@blp.alt_response(404, schema=ErrorSchema, description="No such session.")
def timeline(session_id: str) -> Any:
    """Every event of one session, who handled it, its stages with durations, photo decisions."""
    now = datetime.now(UTC)
    with get_db().session(all_orgs=True) as db_session:
        hs = db_session.get(HeadshotSession, session_id)
        if hs is None:
            raise ApiError(404, "not_found", "No such session.")
        t = load_timeline(db_session, hs)
        return {
            "session": session_row(db_session, hs),
            "failure_reason": t.failure_reason,
            "personal_info_erased": hs.personal_info_erased_at is not None,
            "entries": t.entries,
            "stages": [
                {
                    "state": s.state,
                    "label": s.label,
                    "started": s.started,
                    "ended": s.ended,
                    "seconds": s.seconds(now),
                }
                for s in t.stages
            ],
            "photos": t.photos,
        }


def _act(session_id: str, run: Any) -> tuple[Any, SessionRow]:
    user = require_support()
    with get_db().uow(all_orgs=True) as uow:
        try:
            result = run(uow, actions.Actor(user.id))
        except actions.SessionNotFound:
            raise ApiError(404, "not_found", "No such session.") from None
        except actions.ActionRefused as exc:
            raise ApiError(409, exc.code, str(exc)) from None
    with get_db().session(all_orgs=True) as db_session:
        hs = db_session.get(HeadshotSession, session_id)
        assert hs is not None  # it was just changed, never removed
        return result, session_row(db_session, hs)


@blp.post("/<session_id>/retry")
@blp.response(200, SessionRowSchema)
@blp.alt_response(409, schema=ErrorSchema, description="Only a failed session can be retried.")
def retry(session_id: str) -> Any:
    """Send a failed session back to the queue (a new automatic approval: preparation runs again)."""
    cmd = actions.RetrySession(session_id)
    return _act(session_id, lambda uow, actor: actions.retry_session(uow, actor, cmd))[1]


@blp.post("/<session_id>/fail")
@blp.arguments(FailSchema)
@blp.response(200, SessionRowSchema)
@blp.alt_response(409, schema=ErrorSchema, description="Only a session in progress can be failed.")
def fail(body: dict[str, Any], session_id: str) -> Any:
    """Fail a stuck session with a reason the person and their admin will see."""
    cmd = actions.FailSession(session_id, body["reason"])
    return _act(session_id, lambda uow, actor: actions.fail_session(uow, actor, cmd))[1]


@blp.post("/<session_id>/delete")
@blp.arguments(DeleteSchema)
@blp.response(200, SessionRowSchema)
@blp.alt_response(409, schema=ErrorSchema, description="Already deleted.")
def delete(body: dict[str, Any], session_id: str) -> Any:
    """Delete a session: its photos, headshots, person model and personal info."""
    cmd = actions.DeleteSession(session_id)
    erasure, row = _act(session_id, lambda uow, actor: actions.delete_session(uow, actor, cmd))
    actions.remove_files(get_blobs(), erasure, get_settings().person_model_dir)
    return row
