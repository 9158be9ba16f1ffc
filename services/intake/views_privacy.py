""" "Delete my data" pages: a confirmation step, then the deletion; and the person's deletion receipts."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for

from libs.privacy import finish_erasures
from libs.web import get_blobs, get_db, get_settings
from services.intake import deletion, sessions
from services.intake.context import current_actor

bp = Blueprint("intake_privacy", __name__)


@bp.get("/sessions/<session_id>/delete")
def confirm_page(session_id: str) -> Any:
    actor = current_actor()
    with get_db().uow(org_id=actor.org_id) as uow:
        hs = sessions.find_session(uow, actor, session_id)  # 404 for anyone else's
        return render_template("delete_data.html", session_id=hs.id, errors={})


@bp.post("/sessions/<session_id>/delete")
def delete(session_id: str) -> Any:
    actor = current_actor()
    confirmed = request.form.get("confirm") == "yes"
    with get_db().uow(org_id=actor.org_id) as uow:
        if not confirmed:
            sessions.find_session(uow, actor, session_id)  # still 404 for anyone else's
            errors = {"confirm": ["Please tick the box to confirm."]}
            return render_template("delete_data.html", session_id=session_id, errors=errors), 422
        erasure = deletion.delete_my_session(uow, actor, session_id, confirm=True)
        uow.commit()
    finish_erasures([erasure], get_blobs(), get_settings())
    return redirect(url_for("intake_privacy.receipts_page"), 303)


@bp.get("/my-data")
def receipts_page() -> Any:
    actor = current_actor()
    with get_db().uow(org_id=actor.org_id) as uow:
        return render_template("receipts.html", receipts=deletion.my_receipts(uow, actor))
