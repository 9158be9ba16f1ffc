"""Team results page and its ZIP downloads (one person's or everyone's), streamed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, render_template, stream_with_context

from libs.web import get_blobs, get_db
from services.review import results
from services.review.access import current_reviewer

bp = Blueprint("results", __name__)


@bp.get("/results")
def results_page() -> Any:
    reviewer = current_reviewer()
    with get_db().uow(org_id=reviewer.org_id) as uow:
        people = [
            {"user_id": p.user_id, "email": p.email, "name": p.name, "count": len(p.headshots)}
            for p in results.completed(uow)
        ]
    return render_template("results.html", people=people)


def _zip_response(user_id: str | None, filename: str) -> Response:
    reviewer = current_reviewer()
    with get_db().uow(org_id=reviewer.org_id) as uow:
        results.completed(uow, user_id)  # 404 before the download starts, not in the middle

    def chunks() -> Iterator[bytes]:
        with get_db().uow(org_id=reviewer.org_id) as uow:
            yield from results.zip_stream(get_blobs(), results.completed(uow, user_id))

    response = Response(stream_with_context(chunks()), mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.get("/results/all.zip")
def everyone_zip() -> Response:
    return _zip_response(None, "team-headshots.zip")


@bp.get("/results/<user_id>.zip")
def person_zip(user_id: str) -> Response:
    return _zip_response(user_id, "headshots.zip")
