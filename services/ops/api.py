"""The ops JSON API, twin of the pages, under /api/v1/ops (flask-smorest; the OpenAPI document is
built from schemas.py and served at /api/v1/ops/openapi.json — behind the /ops mount in the
embedded mode). Support staff only, like the pages.

    GET /api/v1/ops/sessions?state=failed&org=<org id>&older_than_hours=1&q=<id>&page=1
    -> {"sessions": [{"id": "…", "org_name": "Acme", "state": "failed", …}], "total": 1,
        "page": 1, "pages": 1, "counts": {"failed": 1, "queued": 0, …}}
    POST /api/v1/ops/sessions/<id>/retry                      (X-CSRF-Token: <csrf_token of the list>)
    POST /api/v1/ops/sessions/<id>/fail    {"reason": "stuck on a dead GPU node"}
    POST /api/v1/ops/sessions/<id>/delete  {"confirm": true}
    -> the session: {"id": "…", "state": "queued", …}; 409 when its state refuses the action
    GET /api/v1/ops/sessions/<session id>/timeline
    -> {"session": {…}, "entries": [{"at": "…", "title": "session.submitted", "handled_by": […]},
        {"at": "…", "kind": "webhook", "title": "webhook: session.completed", "attempt": 2,
         "outcome": "failed", "status_code": 503, "latency_ms": 41.2, "answer": "busy", …}],
        "stages": [{"state": "queued", "seconds": 12.5, …}], "photos": [...], "failure_reason": null}
    GET /api/v1/ops/emails?status=failed&kind=ready&org=<org id>&session=<id or its start>&page=1
    -> {"emails": [{"recipient": "…", "subject": "…", "kind": "ready", "status": "failed",
        "attempts": 1, "tries": [{"number": 1, "latency_ms": 12.0, "answer": null, "error": "550 …"}]}],
        "total": 1, "page": 1, "pages": 1, "counts": {"sent": 0, "failed": 1, …}}
    GET /api/v1/ops/webhooks?status=pending&kind=session.completed&…   -> {"deliveries": [...], …}
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask_smorest import Blueprint

from libs.db import HeadshotSession
from libs.privacy import finish_erasures
from libs.web import ApiError, get_blobs, get_db, get_settings
from services.ops import actions
from services.ops.access import require_support
from services.ops.deliveries import DeliveryFilter, find_emails, find_webhooks
from services.ops.queries import SessionFilter, SessionRow, find_sessions, session_row
from services.ops.schemas import (
    DeleteSchema,
    EmailFilterSchema,
    EmailPageSchema,
    ErrorSchema,
    FailSchema,
    SessionFilterSchema,
    SessionPageSchema,
    SessionRowSchema,
    TimelineSchema,
    WebhookFilterSchema,
    WebhookPageSchema,
)
from services.ops.timeline import load_timeline

PREFIX = "/api/v1/ops"
F = TypeVar("F", bound=Callable[..., Any])


def support_only(blueprint: Blueprint) -> Callable[[F], F]:
    """Document the answers every ops operation may give before it runs: 401 signed out, 403 not
    support staff (app.py's before_request)."""

    def decorate(view: F) -> F:
        view = blueprint.alt_response(401, schema=ErrorSchema, description="Not signed in.")(view)
        return blueprint.alt_response(403, schema=ErrorSchema, description="Not support staff.")(view)

    return decorate


blp = Blueprint(
    "ops_api",
    __name__,
    url_prefix=f"{PREFIX}/sessions",
    description="Headshot sessions across every organization (support staff only).",
)
deliveries_blp = Blueprint(
    "ops_deliveries_api",
    __name__,
    url_prefix=PREFIX,
    description="E-mails and webhook deliveries across every organization, with every attempt.",
)


@blp.get("")
@support_only(blp)
@blp.arguments(SessionFilterSchema, location="query", as_kwargs=False)
@blp.response(200, SessionPageSchema)
@blp.alt_response(400, schema=ErrorSchema, description="A filter value is not valid.")
def list_sessions(f: SessionFilter) -> Any:
    """Sessions across organizations, newest change first, with counts per state."""
    with get_db().session(all_orgs=True) as db_session:
        return find_sessions(db_session, f, now=datetime.now(UTC))


@blp.get("/<session_id>/timeline")
@support_only(blp)
@blp.response(200, TimelineSchema)
@blp.alt_response(404, schema=ErrorSchema, description="No such session.")
def timeline(session_id: str) -> Any:
    """Every event of one session, who handled it, its stages with durations, photo decisions."""
    now = datetime.now(UTC)
    with get_db().session(all_orgs=True) as db_session:
        hs = db_session.get(HeadshotSession, session_id)
        if hs is None:
            raise ApiError(404, "not_found", "No such session.")
        t = load_timeline(db_session, hs, get_settings().mail_dir)
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
@support_only(blp)
@blp.alt_response(400, schema=ErrorSchema, description="No or a wrong X-CSRF-Token.")
@blp.alt_response(404, schema=ErrorSchema, description="No such session.")
@blp.response(200, SessionRowSchema)
@blp.alt_response(409, schema=ErrorSchema, description="Only a failed session can be retried.")
def retry(session_id: str) -> Any:
    """Send a failed session back to the queue (a new automatic approval: preparation runs again)."""
    cmd = actions.RetrySession(session_id)
    return _act(session_id, lambda uow, actor: actions.retry_session(uow, actor, cmd))[1]


@blp.post("/<session_id>/fail")
@support_only(blp)
@blp.alt_response(400, schema=ErrorSchema, description="No or a wrong X-CSRF-Token.")
@blp.alt_response(404, schema=ErrorSchema, description="No such session.")
@blp.arguments(FailSchema)
@blp.response(200, SessionRowSchema)
@blp.alt_response(409, schema=ErrorSchema, description="Only a session in progress can be failed.")
def fail(body: dict[str, Any], session_id: str) -> Any:
    """Fail a stuck session with a reason the person and their admin will see."""
    cmd = actions.FailSession(session_id, body["reason"])
    return _act(session_id, lambda uow, actor: actions.fail_session(uow, actor, cmd))[1]


@blp.post("/<session_id>/delete")
@support_only(blp)
@blp.alt_response(400, schema=ErrorSchema, description="No or a wrong X-CSRF-Token.")
@blp.alt_response(404, schema=ErrorSchema, description="No such session.")
@blp.arguments(DeleteSchema)
@blp.response(200, SessionRowSchema)
@blp.alt_response(409, schema=ErrorSchema, description="Already deleted.")
def delete(body: dict[str, Any], session_id: str) -> Any:
    """Delete a session: its photos, headshots, person model and personal info."""
    cmd = actions.DeleteSession(session_id)
    erasure, row = _act(session_id, lambda uow, actor: actions.delete_session(uow, actor, cmd))
    finish_erasures([erasure], get_blobs(), get_settings())
    return row


@deliveries_blp.get("/emails")
@support_only(deliveries_blp)
@deliveries_blp.arguments(EmailFilterSchema, location="query", as_kwargs=False)
@deliveries_blp.response(200, EmailPageSchema)
@deliveries_blp.alt_response(400, schema=ErrorSchema, description="A filter value is not valid.")
def emails(f: DeliveryFilter) -> Any:
    """E-mails the notification service recorded, newest first: recipient, subject, status, tries."""
    with get_db().session(all_orgs=True) as db_session:
        return find_emails(db_session, f, mail_dir=get_settings().mail_dir)


@deliveries_blp.get("/webhooks")
@support_only(deliveries_blp)
@deliveries_blp.arguments(WebhookFilterSchema, location="query", as_kwargs=False)
@deliveries_blp.response(200, WebhookPageSchema)
@deliveries_blp.alt_response(400, schema=ErrorSchema, description="A filter value is not valid.")
def webhooks(f: DeliveryFilter) -> Any:
    """Webhook deliveries, newest first, each try with its status code, latency and answer."""
    with get_db().session(all_orgs=True) as db_session:
        return find_webhooks(db_session, f)
