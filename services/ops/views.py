"""Ops pages about sessions: the list across organizations, one session's timeline, and the
support actions (retry, fail with a reason, delete), each a CSRF-protected form post.

Views only translate: query string or form -> schema -> command -> actions.py -> redirect.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from marshmallow import ValidationError

from libs.contracts import STAGES, SessionState
from libs.db import HeadshotSession, Role, User
from libs.privacy import finish_erasures
from libs.web import ApiError, TokenInvalid, get_blobs, get_db, get_settings, login, logout, read_invite
from services.ops import actions
from services.ops.access import require_support
from services.ops.queries import find_sessions, organizations, person_of, session_row
from services.ops.schemas import FailSchema, SessionFilterSchema
from services.ops.timeline import load_timeline

bp = Blueprint("ops", __name__)
log = logging.getLogger("headshots.ops")

STATE_ORDER = [s.value for s, _ in STAGES] + ["onboarding", "rejected", "failed", "deleted"]


def now() -> datetime:
    return datetime.now(UTC)


@bp.get("/invite/<token>")
def invite(token: str) -> Any:
    """Support staff sign in with a signed, expiring link (``python -m services.ops invite``)."""
    try:
        claims = read_invite(get_settings(), token)
    except TokenInvalid as exc:
        return render_template("invite_invalid.html", expired=exc.expired), 410 if exc.expired else 400
    with get_db().session(all_orgs=True) as db_session:
        user = db_session.get(User, str(claims.get("user_id", "")))
    if user is None or not user.active or user.role != Role.SUPPORT.value or user.org_id is not None:
        return render_template("invite_invalid.html", expired=False), 400
    login(user)
    return redirect(url_for("ops.sessions"), 303)  # the token leaves the address bar


@bp.post("/sign-out")
def sign_out() -> Any:
    logout()
    return render_template("signed_out.html")


@bp.get("/")
def sessions() -> Any:
    try:
        f = SessionFilterSchema().load(request.args)
    except ValidationError as exc:
        raise ApiError(400, "bad_filter", "Please fix the filter.", exc.normalized_messages()) from None
    with get_db().session(all_orgs=True) as db_session:
        page = find_sessions(db_session, f, now=now())
        orgs = organizations(db_session)
    return render_template(
        "sessions.html",
        page=page,
        f=f,
        orgs=orgs,
        states=STATE_ORDER,
        args=request.args.to_dict(),
        tab_args={k: v for k, v in request.args.items() if k not in ("page", "state")},
    )


def _load(db_session: Any, session_id: str) -> HeadshotSession:
    hs = db_session.get(HeadshotSession, session_id)
    if hs is None:
        raise ApiError(404, "not_found", "No such session.")
    return hs


@bp.get("/sessions/<session_id>")
def session_detail(session_id: str) -> Any:
    with get_db().session(all_orgs=True) as db_session:
        hs = _load(db_session, session_id)
        row = session_row(db_session, hs)
        timeline = load_timeline(db_session, hs, get_settings().mail_dir)
        person = person_of(db_session, hs)
        # Personal info is shown only while it exists; after erasure there is nothing to show.
        full_name = None if hs.personal_info_erased_at else hs.full_name
        erased = hs.personal_info_erased_at is not None
    return render_template(
        "session.html",
        row=row,
        timeline=timeline,
        person_email=person.email if person and not erased else None,
        full_name=full_name,
        erased=erased,
        now=now(),
        can_retry=row.state == SessionState.FAILED,
        can_fail=row.state in actions.IN_FLIGHT,
        can_delete=row.state != SessionState.DELETED,
        errors={},
    )


def _detail(session_id: str, anchor: str = "") -> Any:
    return redirect(url_for("ops.session_detail", session_id=session_id) + anchor, 303)


def _act(run: Any, done: str) -> Any | None:
    """Run one audited action; None (with the reason flashed) when the session's state refuses it."""
    user = require_support()
    with get_db().uow(all_orgs=True) as uow:
        try:
            result = run(uow, actions.Actor(user.id))
        except actions.SessionNotFound:
            raise ApiError(404, "not_found", "No such session.") from None
        except actions.ActionRefused as exc:
            flash(str(exc), "error")
            return None
    flash(done, "ok")
    return result


@bp.post("/sessions/<session_id>/retry")
def retry(session_id: str) -> Any:
    cmd = actions.RetrySession(session_id)
    _act(
        lambda uow, actor: actions.retry_session(uow, actor, cmd),
        "Sent back to the queue: preparation starts again.",
    )
    return _detail(session_id)


@bp.post("/sessions/<session_id>/fail")
def fail(session_id: str) -> Any:
    try:
        form = FailSchema().load(request.form)
    except ValidationError as exc:
        messages = exc.normalized_messages().get("reason", ["Please give a reason."])
        flash(" ".join(messages) if isinstance(messages, list) else str(messages), "error")
        return _detail(session_id, "#fail")
    cmd = actions.FailSession(session_id, form["reason"])
    _act(
        lambda uow, actor: actions.fail_session(uow, actor, cmd), "Marked as failed; the person is told why."
    )
    return _detail(session_id)


@bp.post("/sessions/<session_id>/delete")
def delete(session_id: str) -> Any:
    if request.form.get("confirm") != "yes":
        flash("Tick the box to confirm: deleting removes the photos, headshots and personal info.", "error")
        return _detail(session_id, "#delete")
    cmd = actions.DeleteSession(session_id)
    erasure = _act(
        lambda uow, actor: actions.delete_session(uow, actor, cmd),
        "Deleted, with its files and personal info.",
    )
    if erasure is not None:  # None: the state refused it, and the page says why
        finish_erasures([erasure], get_blobs(), get_settings())
    return _detail(session_id)
