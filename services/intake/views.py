"""Intake pages: invite link, the onboarding page (photos, about you, styles, format, review and
submit), the waiting page, the results page and signed downloads.

Views only translate: request -> schema -> command (forms.py) -> domain -> page or redirect; what
the domain refuses is answered by the one error table in app.py. The page works without
JavaScript (plain form posts); static/intake.js adds per-file uploads with instant verdicts and
saves each answer as it is given, through the JSON API.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import MultiDict

from libs.catalog import Style
from libs.contracts import GATEWAY_EVENTS, STAGES, SessionState, stage_label
from libs.db import Headshot, HeadshotSession, Organization, UnitOfWork, User
from libs.storage import BlobNotFound, BlobStore
from libs.web import (
    ApiError,
    TokenInvalid,
    get_blobs,
    get_db,
    get_settings,
    login,
    logout,
    not_found,
    progress_token,
    read_invite,
    sign,
    unsign,
)
from services.intake import forms, photos, results, sessions, submission, swatches
from services.intake.choices import EYE_COLORS, GENDERS, GLASSES
from services.intake.commands import Answers
from services.intake.context import catalog, current_actor, signed_in
from services.intake.errors import Invalid, PhotoRefused, RateLimited
from services.intake.schemas import SubmissionSchema
from services.intake.sessions import Actor

bp = Blueprint("intake", __name__)
bp.add_app_template_global(swatches.backdrop_class, "backdrop_class")
bp.add_app_template_global(swatches.eye_class, "eye_class")

S = SessionState
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
    # A rejected session is moved back to onboarding by intake's handler a moment later; until
    # then its page is the waiting page (which shows the reason and follows it there).
    if session.state in sessions.WAITING_STATES or session.state == S.REJECTED:
        return url_for("intake.waiting", session_id=session.id)
    return url_for("intake.session_page", session_id=session.id)


# --- sign in -----------------------------------------------------------------------------------------------
@bp.get("/")
def index() -> Any:
    user = signed_in()
    if user is None:
        return render_template("home.html"), 200
    with get_db().uow(org_id=user.org_id) as uow:
        session = sessions.current_or_new_session(uow, Actor.of(user), catalog())
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
        session = sessions.current_or_new_session(uow, Actor.of(user), catalog())
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
        session = sessions.find_session(uow, actor, session_id)
        if session.state != S.ONBOARDING:
            return redirect(page_for(session))
        return render_template("onboarding.html", **_page_context(uow, session))


@bp.post("/sessions/<session_id>/submit")
def submit(session_id: str) -> Any:
    actor = current_actor()
    form = submission_form(request.form)
    with get_db().uow(org_id=actor.org_id) as uow:
        try:
            command = forms.submission_command(uow, actor, session_id, form, catalog())
            submission.submit(uow, actor, command, catalog())
        except Invalid as exc:
            session = sessions.find_session(uow, actor, session_id)
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
    rules = sessions.rules_for(uow, session, cat)
    saved = Answers.of(session).as_dict()
    saved["full_name"] = saved["full_name"] or ""
    if values:
        saved.update({k: v for k, v in values.items() if v is not None})
    options = sessions.style_options(rules)
    by_backdrop: dict[str, tuple[Any, list[Style]]] = {}
    for style in options:
        by_backdrop.setdefault(style.backdrop.id, (style.backdrop, []))[1].append(style)
    return {
        "session": session,
        "package": rules.package,
        "photos": sessions.photos_of(uow, session),
        "max_photos": photos.MAX_PHOTOS,
        "values": saved,
        "errors": flat_errors(errors or {}),
        "backdrops": list(by_backdrop.values()),
        "style_labels": {s.id: s.label for s in cat.all_styles()},
        "style_backdrops": {s.id: s.backdrop.id for s in cat.all_styles()},
        "preselected": [cat.style(sid) for sid in rules.package.preselected],
        "formats": [cat.format(fid) for fid in rules.package.formats],
        "genders": GENDERS,
        "eye_colors": EYE_COLORS,
        "glasses_choices": GLASSES,
        "rejection_reason": sessions.rejection_reason(uow, session),
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
            photos.upload_photo(get_db(), get_blobs(), get_settings(), actor, session_id, file.read())
            flash(f"{name}: looks good.", "ok")
        except (PhotoRefused, RateLimited) as exc:  # said next to the file; anything else answers the page
            flash(f"{name}: {exc.message}", "error")
    return redirect(url_for("intake.session_page", session_id=session_id) + "#photos", 303)


@bp.post("/sessions/<session_id>/photos/<photo_id>/delete")
def delete_photo(session_id: str, photo_id: str) -> Any:
    actor = current_actor()
    with get_db().uow(org_id=actor.org_id) as uow:
        photos.delete_photo(uow, get_blobs(), actor, session_id, photo_id)
    return redirect(url_for("intake.session_page", session_id=session_id) + "#photos", 303)


@bp.get("/sessions/<session_id>/photos/<photo_id>/thumb.jpg")
def photo_thumb(session_id: str, photo_id: str) -> Any:
    actor = current_actor()
    with get_db().uow(org_id=actor.org_id) as uow:
        session = sessions.find_session(uow, actor, session_id)
        photo = photos.find_photo(uow, session, photo_id)
        try:
            data = photos.thumbnail(get_blobs(), photo)
        except BlobNotFound:
            raise not_found("photo") from None
    response = Response(data, mimetype="image/jpeg")
    response.headers["Cache-Control"] = "private, max-age=600"
    return response


# --- waiting and results --------------------------------------------------------------------------------------
@bp.get("/sessions/<session_id>/waiting")
def waiting(session_id: str) -> Any:
    actor = current_actor()
    settings = get_settings()
    with get_db().uow(org_id=actor.org_id) as uow:
        session = sessions.find_session(uow, actor, session_id)
        if session.state == S.ONBOARDING:
            return redirect(page_for(session))
        org = uow.session.get(Organization, session.org_id)
        stages = [
            {"state": str(state), "label": label}
            for state, label in STAGES
            # Orgs without manual review never wait for it: do not show that step.
            if state != S.IN_REVIEW or (org is not None and org.manual_review)
        ]
        labels = {s.id: s.label for s in catalog().all_styles()}
        shots = [
            {
                "id": shot.id,
                "label": labels.get(shot.style_id, shot.style_id),
                "thumb_url": url_for("intake.headshot_thumb", session_id=session.id, headshot_id=shot.id),
            }
            for shot in session.headshots
        ]
        live = {
            "gateway_path": settings.GATEWAY_PATH,
            "token": progress_token(
                settings, session_id=session.id, org_id=session.org_id, user_id=session.user_id
            ),
            # The Socket.IO client is fetched at setup (make vendor); without it the page polls.
            "socketio_js": _has_static(SOCKETIO_JS),
            # The event names the page reacts to, from the contracts: {"SessionCompleted": <routing key>, ...}
            "events": {event.name: event.routing_key for event in GATEWAY_EVENTS},
        }
        return render_template(
            "waiting.html",
            session=session,
            status=sessions.status(session),
            stages=stages,
            stage=stage_label(session.state),
            headshots=shots,
            live=live,
            reason=session.failure_reason if session.state == S.FAILED else None,
            next_text=NEXT_STEPS.get(session.state, ""),
        )


NEXT_STEPS: dict[str, str] = {
    S.SUBMITTED: "We're checking your submission. This usually takes a moment.",
    S.IN_REVIEW: "Your organization reviews every submission. You'll hear from us as soon as your admin "
    "has looked at it.",
    S.QUEUED: "Your session is in line. Once it starts, we prepare your photos, learn your look, then "
    "create each headshot.",
    S.PREPROCESSING: "Next we learn your look from your photos, then create each headshot.",
    S.TRAINING: "Next we create your headshots, one style at a time. They'll appear below as they're finished.",
    S.GENERATING: "When the last headshot is done you'll be taken to your results, and we'll e-mail you.",
    S.FAILED: "Our team has been told. You don't need to do anything; we'll e-mail you.",
}
SOCKETIO_JS = "vendor/socket.io.min.js"


def _has_static(filename: str) -> bool:
    folder = current_app.static_folder
    return folder is not None and (Path(folder) / filename).is_file()


@bp.get("/sessions/<session_id>/headshots/<headshot_id>/thumb")
def headshot_thumb(session_id: str, headshot_id: str) -> Any:
    """A finished headshot's thumbnail for the waiting page: the owner is sent on to a signed,
    expiring link (the same kind the results page uses)."""
    actor = current_actor()
    with get_db().uow(org_id=actor.org_id) as uow:
        session = sessions.find_session(uow, actor, session_id)
        shot = results.find_headshot(uow, session, headshot_id)
        return redirect(download_url(get_settings(), session, actor, shot, variant="thumb"), 302)


@bp.get("/sessions/<session_id>/results", endpoint="results")
def results_page(session_id: str) -> Any:
    actor = current_actor()
    settings = get_settings()
    with get_db().uow(org_id=actor.org_id) as uow:
        session = sessions.find_session(uow, actor, session_id)
        groups = results.ordered_by_likeness(results.headshots_by_style(uow, session, catalog()))
        cat = catalog()

        def links(shot: Headshot) -> dict[str, Any]:
            return {
                "shot": shot,
                "url": download_url(settings, session, actor, shot),
                "thumb_url": download_url(settings, session, actor, shot, variant="thumb"),
                "square_url": download_url(settings, session, actor, shot, variant="square"),
            }

        view = [
            {
                "style_id": sid,
                "label": label,
                "backdrop": cat.style(sid).backdrop.id if cat.is_style(sid) else "",
                "headshots": [links(shot) for shot in shots],
            }
            for sid, label, shots in groups
        ]
        has_favourites = bool(results.favourites(groups))
        return render_template(
            "results.html",
            session=session,
            can_start_new=sessions.can_start_new(uow, actor, session),
            groups=view,
            zip_url=download_url(settings, session, actor, None) if groups else None,
            favourites_zip_url=(
                download_url(settings, session, actor, None, variant="favourites") if has_favourites else None
            ),
            ttl_minutes=settings.RESULT_URL_TTL_SECONDS // 60,
            studio_engine=settings.engine == "studio",
        )


@bp.post("/sessions/<session_id>/headshots/<headshot_id>/favourite")
def favourite(session_id: str, headshot_id: str) -> Any:
    """Mark or unmark a favourite (a plain form post; ``favourite=1`` marks, ``0`` unmarks)."""
    actor = current_actor()
    value = request.form.get("favourite", "")
    if value not in ("0", "1"):
        raise ApiError(422, "validation_failed", "Please choose whether this is a favourite.")
    with get_db().uow(org_id=actor.org_id) as uow:
        session = sessions.find_session(uow, actor, session_id)
        results.set_favourite(uow, session, headshot_id, value == "1")
    return redirect(url_for("intake.results", session_id=session_id) + f"#h-{headshot_id}", 303)


@bp.post("/sessions/new")
def start_new_session() -> Any:
    """Renewal: "Start a new headshot session" on the results page (refused unless the org offers it)."""
    actor = current_actor()
    with get_db().uow(org_id=actor.org_id) as uow:
        created = sessions.start_new_session(uow, actor, catalog())
        return redirect(url_for("intake.session_page", session_id=created.id), 303)


def download_url(
    settings: Any, session: HeadshotSession, actor: Actor, shot: Headshot | None, *, variant: str = "full"
) -> str:
    """A signed link to one headshot (``variant`` full, thumb or square) or, with ``shot=None``,
    the ZIP of all (``variant="favourites"``: of the favourites), valid for RESULT_URL_TTL_SECONDS
    and only to the session's owner."""
    token = sign(
        settings,
        RESULT_PURPOSE,
        {
            "s": session.id,
            "u": actor.user_id,
            "o": actor.org_id,
            "h": shot.id if shot else None,
            "v": variant,
        },
    )
    return url_for("intake.download", token=token)


@bp.get("/download/<token>")
def download(token: str) -> Any:
    """One headshot (or the ZIP) behind a signed link, for its owner only. With an S3-compatible
    store, a picture or the ZIP of all is not streamed through here: after the owner check the
    answer is a redirect to a presigned store URL that expires in STORE_URL_SECONDS. A square crop
    and the ZIP are made the first time and kept in the store's results area (erased with the
    headshots); the ZIP of favourites, which changes with every pick, is still streamed."""
    settings = get_settings()
    try:
        claims = unsign(settings, RESULT_PURPOSE, token, max_age=settings.RESULT_URL_TTL_SECONDS)
    except TokenInvalid as exc:
        message = (
            "This download link has expired. Reload your results page for a fresh one."
            if exc.expired
            else ("This download link isn't valid.")
        )
        raise ApiError(
            410 if exc.expired else 404, "link_expired" if exc.expired else "not_found", message
        ) from None
    actor = current_actor()
    # The signature proves we issued the link; the owner check keeps a forwarded link useless.
    if claims.get("u") != actor.user_id or claims.get("o") != actor.org_id:
        raise not_found("download")
    variant = str(claims.get("v") or "full")
    blobs = get_blobs()
    with get_db().uow(org_id=actor.org_id) as uow:
        session = sessions.find_session(uow, actor, str(claims.get("s")))
        if claims.get("h") is None:
            groups = results.headshots_by_style(uow, session, catalog())
            if variant == "favourites":
                data = _zipped(blobs, results.favourites(groups))
                fav_key = results.favourites_zip_key(session)
                if url := _store_url(fav_key, "favourite-headshots.zip", False, lambda: data, fresh=True):
                    return redirect(url, 302)
                return _attachment(data, "application/zip", "favourite-headshots.zip")
            zip_key = results.zip_key(session, groups)
            if url := _store_url(
                zip_key, "headshots.zip", False, lambda: results.zip_headshots(blobs, groups)
            ):
                return redirect(url, 302)
            return _attachment(_zipped(blobs, groups), "application/zip", "headshots.zip")
        shot = results.find_headshot(uow, session, str(claims["h"]))
        if variant not in results.VARIANTS:
            raise not_found("picture")
        inline = request.args.get("download") is None
        key = results.stored_key(shot, variant)
        made = (lambda: results.picture(blobs, shot, variant).data) if variant == "square" else None
        if key is not None and (
            url := _store_url(key, results.file_name(shot, results.ext_of(key), variant), inline, made)
        ):
            return redirect(url, 302)
        try:
            pic = results.picture(blobs, shot, variant)
        except BlobNotFound:
            raise not_found("download") from None
        return _attachment(pic.data, pic.mimetype, results.file_name(shot, pic.ext, variant), inline=True)


# A presigned store URL only has to outlive the redirect that hands it out: the page's own signed
# link (RESULT_URL_TTL_SECONDS) is what the person keeps, and it checks the owner each time.
STORE_URL_SECONDS = 60


def _store_url(
    key: str, filename: str, inline: bool, make: Callable[[], bytes] | None = None, *, fresh: bool = False
) -> str | None:
    """The store's own short-lived URL for ``key`` (None: the store serves nothing itself). A
    missing object answers 404 here, as when streaming, unless ``make`` can make it: then it is
    made once and stored under ``key`` (a derived key: a second request finds it, two at once
    write the same bytes). ``fresh``: made and stored again on every request (the favourites'
    ZIP, whose picks change)."""
    blobs = get_blobs()
    disposition = f'{"inline" if inline else "attachment"}; filename="{filename}"'
    url = blobs.url_for_download(key, STORE_URL_SECONDS, disposition=disposition)
    if url is not None and make is not None and fresh:
        blobs.put_at(key, make())
    elif url is not None and not blobs.exists(key):
        if make is None:
            raise not_found("download")
        try:
            blobs.put_at(key, make())
        except BlobNotFound:  # a headshot it is made from is gone
            raise not_found("download") from None
    return url


def _zipped(blobs: BlobStore, groups: results.Groups) -> bytes:
    """The ZIP streamed by the app; a headshot file gone from the store is a 404, as for one image."""
    try:
        return results.zip_headshots(blobs, groups)
    except BlobNotFound:
        raise not_found("download") from None


def _attachment(data: bytes, mimetype: str, filename: str, *, inline: bool = False) -> Response:
    response = Response(data, mimetype=mimetype)
    disposition = "inline" if inline and request.args.get("download") is None else "attachment"
    response.headers["Content-Disposition"] = f'{disposition}; filename="{filename}"'
    response.headers["Cache-Control"] = "private, max-age=300"
    return response


@bp.get("/swatches.css")
def swatches_css() -> Response:
    """The backdrop and eye colours as classes (the CSP refuses inline style attributes)."""
    response = Response(swatches.stylesheet(catalog()), mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
