"""Console pages: delete a member's data (a confirmation page, then the deletion) and the org's
deletion receipts."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from libs.db import User
from libs.privacy import finish_erasures
from libs.web import get_blobs, get_db, get_settings
from services.review import privacy
from services.review.access import current_reviewer
from services.review.errors import NotFound

bp = Blueprint("privacy", __name__)


def _member(user_id: str) -> dict[str, str]:
    reviewer = current_reviewer()
    with get_db().uow(org_id=reviewer.org_id) as uow:
        user = uow.session.scalar(select(User).where(User.id == user_id))  # tenant-scoped
        if user is None:
            raise NotFound("No such member.")
        return {"id": user.id, "email": user.email, "name": user.display_name or user.email}


@bp.get("/members/<user_id>/delete-data")
def confirm_page(user_id: str) -> Any:
    return render_template("delete_data.html", member=_member(user_id))


@bp.post("/members/<user_id>/delete-data")
def delete_data(user_id: str) -> Any:
    member = _member(user_id)
    if request.form.get("confirm") != "yes":
        flash("Tick the box to confirm: the deletion is for good.", "error")
        return render_template("delete_data.html", member=member, missing=True), 422
    reviewer = current_reviewer()
    with get_db().uow(org_id=reviewer.org_id) as uow:
        erasures = privacy.delete_member_data(uow, reviewer, user_id, get_settings().mail_dir)
        uow.commit()
    finish_erasures(erasures, get_blobs(), get_settings())
    sessions = sum(e.receipt.session_id is not None for e in erasures)
    flash(
        f"{sessions} session(s) deleted with their photos, headshots and models; the member's "
        "address and name are erased and their links no longer work.",
        "ok",
    )
    return redirect(url_for("privacy.receipts_page"), 303)


@bp.get("/deletion-receipts")
def receipts_page() -> Any:
    reviewer = current_reviewer()
    with get_db().uow(org_id=reviewer.org_id) as uow:
        receipts = privacy.org_receipts(uow)
    return render_template("receipts.html", receipts=receipts)
