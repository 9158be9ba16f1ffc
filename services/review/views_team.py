"""Team page (members, status, counts, search, filter, pages) and the invite page (one address,
a pasted list or a CSV file), with resend and deactivate."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, stream_with_context, url_for

from libs.web import get_db
from services.review import csvimport, invites, members
from services.review.access import current_reviewer
from services.review.csvimport import LineError
from services.review.errors import Invalid, TooLarge
from services.review.members import STATUSES, TeamQuery

bp = Blueprint("team", __name__)


def team_query(args: Any) -> TeamQuery:
    try:
        page = int(args.get("page", "1"))
    except ValueError:
        page = 1
    return TeamQuery(search=args.get("q", "")[:200], status=args.get("status", ""), page=page)


@bp.get("/team")
def team_page() -> Any:
    reviewer = current_reviewer()
    query = team_query(request.args)
    with get_db().uow(org_id=reviewer.org_id) as uow:
        page = members.team_page(uow, reviewer.org_id, query)
    return render_template("team.html", page=page, query=query, statuses=STATUSES)


@bp.get("/team.csv")
def team_csv() -> Any:
    """Every member as CSV, streamed row by row; cells that a spreadsheet would run as a formula
    are quoted as text."""
    reviewer = current_reviewer()

    def rows() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        with get_db().uow(org_id=reviewer.org_id) as uow:
            for row in members.export_rows(uow, reviewer.org_id):
                writer.writerow(row)
                yield out.getvalue()
                out.seek(0)
                out.truncate()

    response = Response(stream_with_context(rows()), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="team.csv"'
    return response


@bp.get("/invite")
def invite_page() -> Any:
    current_reviewer()
    return render_template("invite.html", line_errors=[], errors={}, text="")


def _submitted_text() -> str:
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        return csvimport.decode_upload(upload.read(csvimport.MAX_CSV_BYTES + 1))
    return "\n".join(t for t in (request.form.get("email", ""), request.form.get("emails", "")) if t.strip())


@bp.post("/invite")
def invite() -> Any:
    reviewer = current_reviewer()
    text = ""
    try:
        text = _submitted_text()
        people, line_errors = csvimport.parse(text)
        if not people and not line_errors:
            raise Invalid(
                "Please enter at least one address.", {"emails": ["Enter an address or choose a file."]}
            )
    except (Invalid, TooLarge) as exc:
        status = 413 if isinstance(exc, TooLarge) else 422
        errors = exc.fields or {"file": [exc.message]}
        return render_template(
            "invite.html", line_errors=[], errors=errors, message=exc.message, text=""
        ), status
    if line_errors:
        return _refused(line_errors, text)
    with get_db().uow(org_id=reviewer.org_id) as uow:
        result = invites.invite(uow, reviewer, people)
        uow.commit()
    if result.invited:
        flash(f"Invited {len(result.invited)} people: they will get an e-mail with their link.", "ok")
    if result.already_members:
        flash(f"{len(result.already_members)} already in your organization, not invited again.", "ok")
    return redirect(url_for("team.team_page"), 303)


def _refused(line_errors: list[LineError], text: str) -> Any:
    message = f"Nothing was imported: {len(line_errors)} line(s) need fixing."
    shown = line_errors[:200]
    # A pasted list comes back for fixing; a file is fixed in the file.
    pasted = text if "file" not in request.files or not request.files["file"].filename else ""
    return render_template(
        "invite.html",
        line_errors=shown,
        more=len(line_errors) - len(shown),
        errors={},
        message=message,
        text=pasted,
    ), 422


@bp.post("/members/<user_id>/resend")
def resend(user_id: str) -> Any:
    reviewer = current_reviewer()
    with get_db().uow(org_id=reviewer.org_id) as uow:
        user = invites.resend(uow, reviewer, user_id)
        uow.commit()
    flash(f"Invite sent again to {user.email}.", "ok")
    return redirect(request.referrer if _same_site(request.referrer) else url_for("team.team_page"), 303)


@bp.post("/members/<user_id>/deactivate")
def deactivate(user_id: str) -> Any:
    reviewer = current_reviewer()
    with get_db().uow(org_id=reviewer.org_id) as uow:
        user = invites.deactivate(uow, reviewer, user_id)
        uow.commit()
    flash(f"{user.email} is deactivated: their links no longer sign in.", "ok")
    return redirect(url_for("team.team_page"), 303)


def _same_site(url: str | None) -> bool:
    return bool(url) and url.startswith(request.host_url)  # type: ignore[union-attr]
