"""Intake pages: invite link, the onboarding page (photos, about you, styles, format, review and
submit), the waiting page, the results page and signed downloads.

Views only translate: request -> onboarding command -> page or redirect. The page works without
JavaScript (plain form posts); static/intake.js adds per-file uploads with instant verdicts and
saves each answer as it is given, through the JSON API.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import MultiDict

from libs.catalog import Style
from libs.contracts import STAGES, SessionState, stage_label
from libs.db import Headshot, HeadshotSession, Organization, UnitOfWork, User
from libs.storage import BlobNotFound
from libs.web import (
    TokenInvalid,
    get_blobs,
    get_db,
    get_settings,
    login,
    logout,
    read_invite,
    sign,
    unsign,
)
from services.intake import onboarding
from services.intake.context import catalog, current_actor, signed_in
from services.intake.onboarding import Actor, IntakeError
from services.intake.schemas import EYE_COLORS, GENDERS, GLASSES, SubmissionSchema

bp = Blueprint("intake", __name__)

S = SessionState
# Display-only colours for the eye-colour choices.
EYE_SWATCHES = {
    "brown": "#6b4226",
    "hazel": "#8e7618",
    "amber": "#c68a12",
    "green": "#3f7d3a",
    "blue": "#3b6fb6",
    "grey": "#8a949e",
}
RESULT_PURPOSE = "result"
# Errors are listed in the order the page asks: photos first, then the submission form's fields.
FIELD_ORDER = {name: i for i, name in enumerate(["photos", *SubmissionSchema().fields])}


@bp.app_context_processor
def _header() -> dict[str, Any]:
    """The signed-in person and their organization, for every page's header."""
    try:
        user = signed_in()
        org = None
        if user is not None:
            with get_db().session(org_id=user.org_id) as s:
                org = s.get(Organization, user.org_id)
    except SQLAlchemyError:
        # Error pages render through here too: a database outage must not break them.
        return {"user": None, "org": None}
    return {"user": user, "org": org}


def flat_errors(messages: dict[str, Any]) -> dict[str, list[str]]:
    """marshmallow's messages, one flat list of strings per field (a list field's item errors
    come as ``{index: [...]}``)."""

    def flatten(value: Any) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, dict):
            return [m for v in value.values() for m in flatten(v)]
        if isinstance(value, list | tuple):
            return [m for v in value for m in flatten(v)]
        return [str(value)]

    flat = {name: flatten(value) for name, value in messages.items()}
    # In the order the page shows the fields, so the summary reads top to bottom.
    return dict(sorted(flat.items(), key=lambda item: FIELD_ORDER.get(item[0], len(FIELD_ORDER))))


def page_for(session: HeadshotSession) -> str:
    """Where a session's owner belongs: onboarding, waiting or results."""
    if session.state == S.COMPLETED:
        return url_for("intake.results", session_id=session.id)
    if session.state in onboarding.WAITING_STATES:
        return url_for("intake.waiting", session_id=session.id)
    return url_for("intake.session_page", session_id=session.id)


# --- sign in -----------------------------------------------------------------------------------------------
@bp.get("/")
def index() -> Any:
    user = signed_in()
    if user is None:
        return render_template("home.html"), 200
    with get_db().uow(org_id=user.org_id) as uow:
        session = onboarding.current_session(uow, Actor.of(user), catalog())
        return redirect(page_for(session))


@bp.get("/invite/<token>")
def invite(token: str) -> Any:
    """Sign in with a signed, expiring invite link, then go to the person's current session."""
    try:
        claims = read_invite(get_settings(), token)
    except TokenInvalid as exc:
        return render_template("invite_invalid.html", expired=exc.expired), 410 if exc.expired else 400
    with get_db().session(all_orgs=True) as s:
        user = s.get(User, str(claims.get("user_id", "")))
    if user is None or not user.active or user.org_id is None or user.org_id != claims.get("org_id"):
        return render_template("invite_invalid.html", expired=False), 400
    login(user)
    with get_db().uow(org_id=user.org_id) as uow:
        session = onboarding.current_session(uow, Actor.of(user), catalog())
        # Redirect, so the token leaves the address bar and the history.
        return redirect(page_for(session), 303)


@bp.post("/sign-out")
def sign_out() -> Any:
    logout()
    return redirect(url_for("intake.index"), 303)


# --- the onboarding page --------------------------------------------------------------------------------------
@bp.get("/sessions/<session_id>")
def session_page(session_id: str) -> Any:
    actor = current_actor()
    with get_db().uow(org_id=actor.org_id) as uow:
        session = onboarding.find_session(uow, actor, session_id)
        if session.state != S.ONBOARDING:
            return redirect(page_for(session))
        return render_template("onboarding.html", **_page_context(uow, session))


@bp.post("/sessions/<session_id>/submit")
def submit(session_id: str) -> Any:
    actor = current_actor()
    form = submission_form(request.form)
    with get_db().uow(org_id=actor.org_id) as uow:
        try:
            onboarding.submit(uow, actor, session_id, form, catalog())
        except IntakeError as exc:
            if exc.status != 422:
                raise
            session = onboarding.find_session(uow, actor, session_id)
            context = _page_context(uow, session, values=form, errors=exc.fields)
            return render_template("onboarding.html", **context), 422
    # Already submitted (double click, replayed form) lands here too: the waiting page.
    return redirect(url_for("intake.waiting", session_id=session_id), 303)


def submission_form(form: MultiDict[str, str]) -> dict[str, Any]:
    """The submit form as SubmissionSchema input. The form always carries the styles section, so
    no style ticked means none chosen; unticked confirmations are simply absent (required)."""
    data: dict[str, Any] = {"styles": form.getlist("styles")}
    for name in ("full_name", "gender", "eye_color", "glasses", "format", "agree_terms", "best_photos"):
        if name in form:
            data[name] = form[name]
    return data


def _page_context(
    uow: UnitOfWork,
    session: HeadshotSession,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, Any] | None = None,
) -> dict[str, Any]:
    cat = catalog()
    rules = onboarding.rules_for(uow, session, cat)
    saved = {
        "full_name": session.full_name or "",
        "gender": session.gender,
        "eye_color": session.eye_color,
        "glasses": session.glasses,
        "styles": onboarding.chosen_styles(session),
        "format": session.format_id,
    }
    if values:
        saved.update({k: v for k, v in values.items() if v is not None})
    options = onboarding.style_options(rules)
    by_backdrop: dict[str, tuple[Any, list[Style]]] = {}
    for style in options:
        by_backdrop.setdefault(style.backdrop.id, (style.backdrop, []))[1].append(style)
    return {
        "session": session,
        "package": rules.package,
        "photos": onboarding.photos_of(uow, session),
        "max_photos": onboarding.MAX_PHOTOS,
        "values": saved,
        "errors": flat_errors(errors or {}),
        "backdrops": list(by_backdrop.values()),
        "style_labels": {s.id: s.label for s in cat.all_styles()},
        "style_colors": {s.id: s.backdrop.colors for s in cat.all_styles()},
        "preselected": [cat.style(sid) for sid in rules.package.preselected],
        "formats": [cat.format(fid) for fid in rules.package.formats],
        "genders": GENDERS,
        "eye_colors": EYE_COLORS,
        "eye_swatches": EYE_SWATCHES,
        "glasses_choices": GLASSES,
        "rejection_reason": onboarding.rejection_reason(uow, session),
    }


# --- photos without JavaScript (the script uses the API instead) ---------------------------------------------
@bp.post("/sessions/<session_id>/photos")
def upload_photos(session_id: str) -> Any:
    actor = current_actor()
    files = [f for f in request.files.getlist("photos") if f and f.filename]
    if not files:
        flash("Please choose at least one photo to upload.", "error")
    for file in files:
        name = (file.filename or "photo")[:80]  # shown back to the person only, never used as a path
        try:
            onboarding.upload_photo(get_db(), get_blobs(), get_settings(), actor, session_id, file.read())
            flash(f"{name}: looks good.", "ok")
        except IntakeError as exc:
            if exc.status in (401, 404, 409):
                raise
            flash(f"{name}: {exc.message}", "error")
    return redirect(url_for("intake.session_page", session_id=session_id) + "#photos", 303)


@bp.post("/sessions/<session_id>/photos/<photo_id>/delete")
def delete_photo(session_id: str, photo_id: str) -> Any:
    actor = current_actor()
    with get_db().uow(org_id=actor.org_id) as uow:
        onboarding.delete_photo(uow, get_blobs(), actor, session_id, photo_id)
    return redirect(url_for("intake.session_page", session_id=session_id) + "#photos", 303)


@bp.get("/sessions/<session_id>/photos/<photo_id>/thumb.jpg")
def photo_thumb(session_id: str, photo_id: str) -> Any:
    actor = current_actor()
    with get_db().uow(org_id=actor.org_id) as uow:
        session = onboarding.find_session(uow, actor, session_id)
        photo = onboarding.find_photo(uow, session, photo_id)
        try:
            data = onboarding.thumbnail(get_blobs(), photo)
        except BlobNotFound:
            raise IntakeError(404, "not_found", "No such photo.") from None
    response = Response(data, mimetype="image/jpeg")
    response.headers["Cache-Control"] = "private, max-age=600"
    return response


# --- waiting and results --------------------------------------------------------------------------------------
@bp.get("/sessions/<session_id>/waiting")
def waiting(session_id: str) -> Any:
    actor = current_actor()
    with get_db().uow(org_id=actor.org_id) as uow:
        session = onboarding.find_session(uow, actor, session_id)
        if session.state == S.ONBOARDING:
            return redirect(page_for(session))
        org = uow.session.get(Organization, session.org_id)
        stages = [
            {"state": str(state), "label": label}
            for state, label in STAGES
            # Orgs without manual review never wait for it: do not show that step.
            if state != S.IN_REVIEW or (org is not None and org.manual_review)
        ]
        return render_template(
            "waiting.html",
            session=session,
            status=onboarding.status(session),
            stages=stages,
            stage=stage_label(session.state),
        )


@bp.get("/sessions/<session_id>/results")
def results(session_id: str) -> Any:
    actor = current_actor()
    settings = get_settings()
    with get_db().uow(org_id=actor.org_id) as uow:
        session = onboarding.find_session(uow, actor, session_id)
        groups = onboarding.headshots_by_style(uow, session, catalog())
        cat = catalog()
        view = [
            {
                "style_id": sid,
                "label": label,
                "colors": cat.style(sid).backdrop.colors if cat.is_style(sid) else ("#cccccc",),
                "headshots": [
                    {"url": download_url(settings, session, actor, shot), "shot": shot} for shot in shots
                ],
            }
            for sid, label, shots in groups
        ]
        zip_url = download_url(settings, session, actor, None) if groups else None
        return render_template(
            "results.html",
            session=session,
            can_start_new=onboarding.can_start_new(uow, actor, session),
            groups=view,
            zip_url=zip_url,
            ttl_minutes=settings.RESULT_URL_TTL_SECONDS // 60,
        )


@bp.post("/sessions/new")
def start_new_session() -> Any:
    """Renewal: "Start a new headshot session" on the results page (refused unless the org offers it)."""
    actor = current_actor()
    with get_db().uow(org_id=actor.org_id) as uow:
        created = onboarding.start_new_session(uow, actor, catalog())
        return redirect(url_for("intake.session_page", session_id=created.id), 303)


def download_url(settings: Any, session: HeadshotSession, actor: Actor, shot: Headshot | None) -> str:
    """A signed link to one headshot (or, with ``shot=None``, the ZIP of all), valid for
    RESULT_URL_TTL_SECONDS and only to the session's owner."""
    token = sign(
        settings,
        RESULT_PURPOSE,
        {"s": session.id, "u": actor.user_id, "o": actor.org_id, "h": shot.id if shot else None},
    )
    return url_for("intake.download", token=token)


@bp.get("/download/<token>")
def download(token: str) -> Any:
    settings = get_settings()
    try:
        claims = unsign(settings, RESULT_PURPOSE, token, max_age=settings.RESULT_URL_TTL_SECONDS)
    except TokenInvalid as exc:
        message = (
            "This download link has expired. Reload your results page for a fresh one."
            if exc.expired
            else ("This download link isn't valid.")
        )
        raise IntakeError(
            410 if exc.expired else 404, "link_expired" if exc.expired else "not_found", message
        ) from None
    actor = current_actor()
    # The signature proves we issued the link; the owner check keeps a forwarded link useless.
    if claims.get("u") != actor.user_id or claims.get("o") != actor.org_id:
        raise IntakeError(404, "not_found", "No such download.")
    with get_db().uow(org_id=actor.org_id) as uow:
        session = onboarding.find_session(uow, actor, str(claims.get("s")))
        groups = onboarding.headshots_by_style(uow, session, catalog())
        if claims.get("h") is None:
            data = onboarding.zip_headshots(get_blobs(), groups)
            return _attachment(data, "application/zip", "headshots.zip")
        for sid, _label, shots in groups:
            for shot in shots:
                if shot.id == claims["h"]:
                    ext = shot.blob_key.rsplit(".", 1)[-1]
                    mimetype = "image/png" if ext == "png" else "image/jpeg"
                    name = f"headshot-{sid.replace(':', '-')}-{shot.index_in_style + 1}.{ext}"
                    return _attachment(get_blobs().get(shot.blob_key), mimetype, name, inline=True)
    raise IntakeError(404, "not_found", "No such download.")


def _attachment(data: bytes, mimetype: str, filename: str, *, inline: bool = False) -> Response:
    response = Response(data, mimetype=mimetype)
    disposition = "inline" if inline and request.args.get("download") is None else "attachment"
    response.headers["Content-Disposition"] = f'{disposition}; filename="{filename}"'
    response.headers["Cache-Control"] = "private, max-age=300"
    return response
