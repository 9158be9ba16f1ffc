"""The intake journey as a JSON API under /api/v1 (flask-smorest; the OpenAPI document is built
from the marshmallow schemas in schemas.py and served at /api/v1/openapi.json).

Sign in with the invite link (it sets the session cookie), then send the ``csrf_token`` from
``GET /api/v1/sessions/current`` as the ``X-CSRF-Token`` header on every write. Every error has
the shape ``{"error": {"status": 422, "code": "no_face", "message": "…", "fields": {...}}}``.
"""

from __future__ import annotations

from typing import Any

from flask import url_for
from flask.views import MethodView

from libs.db import HeadshotSession, Photo, UnitOfWork
from libs.privacy import finish_erasures
from libs.web import csrf_token, get_blobs, get_db, get_settings
from libs.web.api import ErrorSchema, ServiceBlueprint
from services.intake import deletion, forms, photos, sessions, submission
from services.intake.choices import EYE_COLORS, GENDERS, GLASSES
from services.intake.commands import Answers, ChooseStyles, SavePersonalInfo
from services.intake.context import catalog, current_actor
from services.intake.schemas import (
    DeleteRequestSchema,
    PersonalInfoOutSchema,
    PersonalInfoSchema,
    PhotoSchema,
    ReceiptSchema,
    SessionSchema,
    StatusSchema,
    StylesOutSchema,
    StylesSchema,
    SubmissionSchema,
    UploadSchema,
)

blp = ServiceBlueprint(
    "sessions",
    __name__,
    url_prefix="/api/v1/sessions",
    description="An employee's headshot session: photos, personal info, styles and format, submit, status.",
)


# --- presenters ---------------------------------------------------------------------------------------
def photo_body(photo: Photo) -> dict[str, Any]:
    box = photo.face_box or {}
    return {
        "id": photo.id,
        "width": photo.width,
        "height": photo.height,
        "face": {k: box.get(k) for k in ("x", "y", "w", "h")} if box else None,
        "thumbnail_url": url_for("intake.photo_thumb", session_id=photo.session_id, photo_id=photo.id),
        "uploaded_at": photo.created_at,
    }


def _style_option(style: Any) -> dict[str, Any]:
    return {
        "id": style.id,
        "label": style.label,
        "backdrop": style.backdrop.label,
        "clothing": style.clothing.label,
        "colors": list(style.backdrop.colors),
    }


def session_body(uow: UnitOfWork, session: HeadshotSession) -> dict[str, Any]:
    cat = catalog()
    rules = sessions.rules_for(uow, session, cat)
    package = rules.package
    return {
        "id": session.id,
        "state": session.state,
        "stage": sessions.status(session)["stage"],
        "package": {
            "id": package.id,
            "label": package.label,
            "max_styles": package.max_styles,
            "headshots_per_style": package.headshots_per_style,
            "preselected": [_style_option(cat.style(sid)) for sid in package.preselected],
        },
        "personal_info": Answers.of(session).personal_info(),
        "styles": list(Answers.of(session).styles),
        "format": session.format_id,
        "photos": [photo_body(p) for p in sessions.photos_of(uow, session)],
        "options": {
            "styles": [_style_option(s) for s in sessions.style_options(rules)],
            "formats": [
                {"id": f.id, "label": f.label, "width": f.width, "height": f.height}
                for f in (cat.format(fid) for fid in package.formats)
            ],
            "genders": GENDERS,
            "eye_colors": EYE_COLORS,
            "glasses": GLASSES,
            "max_photos": photos.MAX_PHOTOS,
        },
        "rejection_reason": sessions.rejection_reason(uow, session),
        "csrf_token": csrf_token(),
    }


def _styles_body(session: HeadshotSession) -> dict[str, Any]:
    return {
        "styles": list(Answers.of(session).styles),
        "format": session.format_id,
        "preselected": list(catalog().package(session.package_id).preselected),
    }


# --- endpoints ----------------------------------------------------------------------------------------
@blp.route("/current")
class CurrentSession(MethodView):
    @blp.response(200, SessionSchema)
    @blp.alt_response(401, schema=ErrorSchema, description="Not signed in.")
    def get(self) -> dict[str, Any]:
        """The signed-in person's current session (created in onboarding if they have none)

        ``GET /api/v1/sessions/current`` answers
        ``{"id": "a51b…", "state": "onboarding", "stage": "Onboarding", "package": {"id": "executive",
        "max_styles": 8, …}, "personal_info": {…}, "styles": [], "format": "standard", "photos": [],
        "options": {…}, "csrf_token": "…"}``
        """
        actor = current_actor()
        with get_db().uow(org_id=actor.org_id) as uow:
            session = sessions.current_or_new_session(uow, actor, catalog())
            return session_body(uow, session)


@blp.route("/new")
class NewSession(MethodView):
    @blp.response(201, SessionSchema)
    @blp.alt_response(
        403, schema=ErrorSchema, description="renewal_off: the organization offers no new sessions."
    )
    @blp.alt_response(409, schema=ErrorSchema, description="session_in_progress: the latest is not complete.")
    def post(self) -> dict[str, Any]:
        """Renewal: start a new session after a completed one (when the organization allows it)."""
        actor = current_actor()
        with get_db().uow(org_id=actor.org_id) as uow:
            return session_body(uow, sessions.start_new_session(uow, actor, catalog()))


@blp.route("/deletion-receipts")
class Receipts(MethodView):
    @blp.response(200, ReceiptSchema(many=True))
    def get(self) -> list[dict[str, Any]]:
        """What was deleted of the person's data: kinds and counts, when, why and by whom (no personal info)"""
        actor = current_actor()
        with get_db().uow(org_id=actor.org_id) as uow:
            return deletion.my_receipts(uow, actor)


@blp.route("/<session_id>/delete")
class DeleteSession(MethodView):
    @blp.arguments(DeleteRequestSchema)
    @blp.response(200, ReceiptSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Not this person's session (or already deleted).")
    @blp.alt_response(422, schema=ErrorSchema, description="confirmation_needed: confirm must be true.")
    def post(self, payload: dict[str, Any], session_id: str) -> dict[str, Any]:
        """Delete my data: the session's photos, headshots, person model and answers, for good

        ``POST /api/v1/sessions/a51b…/delete`` with ``{"confirm": true}`` answers 200 with the receipt
        ``{"reason": "request", "by": "you", "kinds": {"photos": 3, "photo_files": 12, …}, …}``.
        Work in progress on the session stops.
        """
        actor = current_actor()
        with get_db().uow(org_id=actor.org_id) as uow:
            erasure = deletion.delete_my_session(uow, actor, session_id, confirm=payload["confirm"])
            uow.commit()
        finish_erasures([erasure], get_blobs(), get_settings())
        return deletion.receipt_body(erasure.receipt)


@blp.route("/<session_id>")
class Session(MethodView):
    @blp.response(200, SessionSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Not this person's session.")
    def get(self, session_id: str) -> dict[str, Any]:
        """One session: personal info, choices, photos and what may be chosen"""
        actor = current_actor()
        with get_db().uow(org_id=actor.org_id) as uow:
            return session_body(uow, sessions.find_session(uow, actor, session_id))


@blp.route("/<session_id>/status")
class Status(MethodView):
    @blp.response(200, StatusSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="Not this person's session.")
    def get(self, session_id: str) -> dict[str, Any]:
        """Where the session is: state, stage in words, progress (the waiting page polls this)

        ``GET /api/v1/sessions/a51b…/status`` answers
        ``{"session_id": "a51b…", "state": "generating", "stage": "Creating your headshots",
        "progress": {"done": 3, "total": 12}, "submitted_at": "2026-11-24T03:00:00+00:00",
        "completed_at": null}``
        """
        actor = current_actor()
        with get_db().uow(org_id=actor.org_id) as uow:
            return sessions.status(sessions.find_session(uow, actor, session_id))


@blp.route("/<session_id>/photos")
class Photos(MethodView):
    @blp.response(200, PhotoSchema(many=True))
    def get(self, session_id: str) -> list[dict[str, Any]]:
        """The session's accepted photos

        ``[{"id": "5b0f…", "width": 512, "height": 512, "face": {"x": 175, "y": 76, "w": 91, "h": 91},
        "thumbnail_url": "/sessions/a51b…/photos/5b0f…/thumb.jpg", "uploaded_at": "…"}]``
        """
        actor = current_actor()
        with get_db().uow(org_id=actor.org_id) as uow:
            session = sessions.find_session(uow, actor, session_id)
            return [photo_body(p) for p in sessions.photos_of(uow, session)]

    @blp.arguments(UploadSchema, location="files")
    @blp.response(201, PhotoSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="Already submitted: photos can't change.")
    @blp.alt_response(413, schema=ErrorSchema, description="file_too_large / too_many_pixels.")
    @blp.alt_response(415, schema=ErrorSchema, description="unsupported_format: not JPEG, PNG or HEIC.")
    @blp.alt_response(
        422,
        schema=ErrorSchema,
        description="The photo was refused: corrupt, too_small, no_face, several_faces, face_cut_off, "
        "face_too_small, different_person, or too_many_photos (20 per session).",
    )
    @blp.alt_response(
        429, schema=ErrorSchema, description="too_many_uploads (UPLOADS_PER_MINUTE); see Retry-After."
    )
    def post(self, files: dict[str, Any], session_id: str) -> dict[str, Any]:
        """Upload one photo; it is checked at once and kept only if accepted

        ``curl -F photo=@me.jpg -H "X-CSRF-Token: …" -b cookies /api/v1/sessions/a51b…/photos``
        answers 201 with the photo (as in the list), or e.g. 422
        ``{"error": {"status": 422, "code": "no_face", "message": "We couldn't find a face in this photo. …"}}``
        """
        actor = current_actor()
        data = files["photo"].read()
        photo = photos.upload_photo(get_db(), get_blobs(), get_settings(), actor, session_id, data)
        return photo_body(photo)


@blp.route("/<session_id>/photos/<photo_id>")
class OnePhoto(MethodView):
    @blp.response(204)
    @blp.alt_response(404, schema=ErrorSchema, description="No such photo in this session.")
    @blp.alt_response(409, schema=ErrorSchema, description="Already submitted: photos can't change.")
    def delete(self, session_id: str, photo_id: str) -> None:
        """Remove a photo (and its files)

        ``DELETE /api/v1/sessions/a51b…/photos/5b0f…`` answers 204 with no body.
        """
        actor = current_actor()
        with get_db().uow(org_id=actor.org_id) as uow:
            photos.delete_photo(uow, get_blobs(), actor, session_id, photo_id)


@blp.route("/<session_id>/info")
class PersonalInfo(MethodView):
    @blp.arguments(PersonalInfoSchema)
    @blp.response(200, PersonalInfoOutSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="Already submitted.")
    def put(self, payload: dict[str, Any], session_id: str) -> dict[str, Any]:
        """Save personal info; send any of the fields (null clears one)

        ``PUT /api/v1/sessions/a51b…/info`` with ``{"full_name": "Bea Employee", "gender": "female",
        "eye_color": "brown", "glasses": "no_glasses"}`` answers 200 with the saved four fields, or 422
        ``{"error": {"code": "validation_failed", "fields": {"gender": ["Please choose a gender from the list."]}}}``
        """
        actor = current_actor()
        with get_db().uow(org_id=actor.org_id) as uow:
            saved = submission.set_personal_info(uow, actor, SavePersonalInfo(session_id, **payload))
            return Answers.of(saved).personal_info()


@blp.route("/<session_id>/styles")
class Styles(MethodView):
    @blp.arguments(StylesSchema)
    @blp.response(200, StylesOutSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="Already submitted.")
    def put(self, payload: dict[str, Any], session_id: str) -> dict[str, Any]:
        """Save the chosen styles and/or the format

        ``PUT /api/v1/sessions/a51b…/styles`` with ``{"styles": ["navy:suit", "office:shirt"],
        "format": "portrait"}`` answers ``{"styles": ["navy:suit", "office:shirt"], "format": "portrait",
        "preselected": ["studio-grey:suit", "office:blazer"]}``; styles beyond the package's
        max_styles, outside the organization's allowed list, or a format the package does not offer
        answer 422 naming the field.
        """
        actor = current_actor()
        with get_db().uow(org_id=actor.org_id) as uow:
            command = ChooseStyles.from_loaded(session_id, payload)
            return _styles_body(submission.set_styles(uow, actor, command, catalog()))


@blp.route("/<session_id>/submit")
class Submit(MethodView):
    @blp.arguments(SubmissionSchema(partial=True))
    @blp.response(200, StatusSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="The session can no longer be submitted.")
    def post(self, payload: dict[str, Any], session_id: str) -> dict[str, Any]:
        """Submit the photos, info and choices (fields left out are taken from what was saved)

        ``POST /api/v1/sessions/a51b…/submit`` with ``{"agree_terms": true, "best_photos": true}``
        answers 200 ``{"state": "submitted", "stage": "Submitted", …}``. Submitting again answers
        the same 200 and changes nothing. Anything missing answers 422 naming every field, e.g.
        ``{"fields": {"photos": ["Please add at least one photo of yourself."],
        "best_photos": ["Please confirm these are your best photos."]}}``
        """
        actor = current_actor()
        with get_db().uow(org_id=actor.org_id) as uow:
            command = forms.submission_command(uow, actor, session_id, payload, catalog())
            outcome = submission.submit(uow, actor, command, catalog())
            return sessions.status(outcome.session)
