"""The review queue: sessions waiting for a decision, their photos, approve / reject / bulk approve.

Views only translate: form → command → decision → redirect (or the page again with the problem).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for

from libs.catalog import default_catalog
from libs.web import get_blobs, get_db
from services.review import decisions
from services.review.access import current_reviewer
from services.review.decisions import Approve, Reject
from services.review.errors import AlreadyDecided, Invalid
from services.review.presenters import photo_image, session_view

bp = Blueprint("queue", __name__)


def _queue_context(
    errors: dict[str, Any] | None = None, values: dict[str, str] | None = None
) -> dict[str, Any]:
    reviewer = current_reviewer()
    cat = default_catalog()
    with get_db().uow(org_id=reviewer.org_id) as uow:
        cards = [session_view(uow, hs, user, cat) for hs, user in decisions.in_review(uow)]
    return {"cards": cards, "errors": errors or {}, "values": values or {}}


@bp.get("/queue")
def queue_page() -> Any:
    return render_template("queue.html", **_queue_context())


@bp.post("/sessions/<session_id>/approve")
def approve(session_id: str) -> Any:
    reviewer = current_reviewer()
    with get_db().uow(org_id=reviewer.org_id) as uow:
        try:
            decisions.approve(uow, reviewer, Approve(session_id))
        except AlreadyDecided as exc:
            flash(exc.message, "error")
            return render_template("queue.html", **_queue_context()), 409
        uow.commit()
    flash("Approved: their headshots are on the way.", "ok")
    return redirect(url_for("queue.queue_page"), 303)


@bp.post("/sessions/<session_id>/reject")
def reject(session_id: str) -> Any:
    reviewer = current_reviewer()
    reason = request.form.get("reason", "")
    with get_db().uow(org_id=reviewer.org_id) as uow:
        try:
            decisions.reject(uow, reviewer, Reject(session_id, reason))
        except Invalid as exc:
            context = _queue_context({session_id: exc.fields.get("reason", [])}, {session_id: reason})
            return render_template("queue.html", **context), 422
        except AlreadyDecided as exc:
            flash(exc.message, "error")
            return render_template("queue.html", **_queue_context()), 409
        uow.commit()
    flash("Sent back with your reason: they will see it when they open their session.", "ok")
    return redirect(url_for("queue.queue_page"), 303)


@bp.post("/queue/approve")
def approve_selected() -> Any:
    reviewer = current_reviewer()
    ids = request.form.getlist("session_ids")
    if not ids:
        flash("Tick the sessions to approve first.", "error")
        return redirect(url_for("queue.queue_page"), 303)
    with get_db().uow(org_id=reviewer.org_id) as uow:
        result = decisions.approve_many(uow, reviewer, ids)
        uow.commit()
    if result.approved:
        flash(f"Approved {len(result.approved)} session(s).", "ok")
    if result.skipped:
        flash(f"{len(result.skipped)} session(s) had already been decided.", "error")
    return redirect(url_for("queue.queue_page"), 303)


@bp.get("/sessions/<session_id>/photos/<photo_id>/<size>.jpg")
def photo(session_id: str, photo_id: str, size: str) -> Any:
    """A photo of a session of the admin's own org (another org's ids are not found)."""
    reviewer = current_reviewer()
    with get_db().uow(org_id=reviewer.org_id) as uow:
        hs = decisions.find_session(uow, session_id)
        data = photo_image(uow, get_blobs(), hs, photo_id, size)
    response = Response(data, mimetype="image/jpeg")
    response.headers["Cache-Control"] = "private, max-age=300"
    return response
