"""The onboarding commands on a real (SQLite) unit of work: what they store, what they refuse, and
what each refusal answers through the web edge's one error table (``to_api_error``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from libs.contracts import SESSION_SUBMITTED, SessionState, decode_message
from libs.db import ChosenStyle, Database, HeadshotSession, Organization, OutboxMessage, Photo, utcnow
from libs.db.demo import DemoData
from libs.settings import Settings
from libs.storage import LocalBlobStore
from libs.web import ApiError
from services.intake import forms, photos, sessions, submission
from services.intake.app import to_api_error
from services.intake.commands import Answers, ChooseStyles, SavePersonalInfo
from services.intake.errors import IntakeRefused, Invalid, NotEditable, NotFound, PhotoRefused, RateLimited
from services.intake.photos import MAX_PHOTOS
from services.intake.schemas import PersonalInfoSchema, StylesSchema
from services.intake.sessions import Actor
from tests.support.intake import (
    COMPLETE_INFO,
    add_photo,
    astronaut_embedding,
    astronaut_png,
    outbox_count,
    submit_concurrently,
)

CONFIRM = {"agree_terms": True, "best_photos": True}


# As the pages and the API do: load the schema, build the command, call the domain.
def save_info(uow, actor: Actor, sid: str, given: dict):
    return submission.set_personal_info(
        uow, actor, SavePersonalInfo(sid, **forms.load(PersonalInfoSchema(), given))
    )


def choose_styles(uow, actor: Actor, sid: str, given: dict):
    return submission.set_styles(uow, actor, ChooseStyles.from_loaded(sid, forms.load(StylesSchema(), given)))


def submit(uow, actor: Actor, sid: str, given: dict):
    return submission.submit(uow, actor, forms.submission_command(uow, actor, sid, given))


def answer(caught: pytest.ExceptionInfo[IntakeRefused]) -> ApiError:
    """What the web edge answers for a refusal (pages and API alike)."""
    return to_api_error(caught.value)


def start(db: Database, user) -> tuple[Actor, str]:
    actor = Actor.of(user)
    with db.uow(org_id=actor.org_id) as uow:
        return actor, sessions.current_or_new_session(uow, actor).id


def ready_to_submit(
    db: Database, actor: Actor, session_id: str, styles=("navy:shirt",), embedding=None
) -> None:
    add_photo(db, actor.org_id, session_id, embedding)
    with db.uow(org_id=actor.org_id) as uow:
        save_info(uow, actor, session_id, COMPLETE_INFO)
    with db.uow(org_id=actor.org_id) as uow:
        choose_styles(uow, actor, session_id, {"styles": list(styles)})


def load(db: Database, org_id: str, session_id: str) -> HeadshotSession:
    with db.session(org_id=org_id) as s:
        found = s.get(HeadshotSession, session_id)
        assert found is not None
        _ = found.styles, found.photos
        return found


# --- sessions ---------------------------------------------------------------------------------------------
def test_first_visit_creates_one_onboarding_session_with_the_orgs_package(db: Database, demo: DemoData):
    actor, sid = start(db, demo.employees[0])
    session = load(db, actor.org_id, sid)
    assert session.state == SessionState.ONBOARDING
    assert session.package_id == "executive"
    assert (
        session.format_id == "standard"
    )  # the package's first format: nothing to choose on one-format packages
    _, again = start(db, demo.employees[0])
    assert again == sid


def test_another_persons_or_orgs_session_is_not_found(db: Database, demo: DemoData):
    _, bea_sid = start(db, demo.employees[0])
    carl = Actor.of(demo.employees[1])
    dana = Actor.of(demo.other_employee)
    with db.uow(org_id=carl.org_id) as uow, pytest.raises(IntakeRefused) as same_org:
        save_info(uow, carl, bea_sid, {"full_name": "Carl"})
    with db.uow(org_id=dana.org_id) as uow, pytest.raises(IntakeRefused) as other_org:
        submit(uow, dana, bea_sid, CONFIRM)
    assert answer(same_org).status == answer(other_org).status == 404
    assert type(same_org.value) is type(other_org.value) is NotFound  # the same answer: nothing revealed
    assert answer(same_org).message == answer(other_org).message == "No such session."
    assert load(db, demo.org_id, bea_sid).full_name is None


# --- personal info and styles ---------------------------------------------------------------------------------
def test_personal_info_is_saved_as_given_and_blank_clears(db: Database, demo: DemoData):
    actor, sid = start(db, demo.employees[0])
    with db.uow(org_id=actor.org_id) as uow:
        save_info(uow, actor, sid, {"full_name": " Bea ", "gender": "female"})
    with db.uow(org_id=actor.org_id) as uow:
        save_info(uow, actor, sid, {"full_name": ""})
    session = load(db, actor.org_id, sid)
    assert (session.full_name, session.gender) == (None, "female")


def test_invalid_personal_info_changes_nothing(db: Database, demo: DemoData):
    actor, sid = start(db, demo.employees[0])
    with db.uow(org_id=actor.org_id) as uow, pytest.raises(IntakeRefused) as caught:
        save_info(uow, actor, sid, {"full_name": "Bea", "eye_color": "purple"})
    assert isinstance(caught.value, Invalid)
    assert (answer(caught).status, answer(caught).code) == (422, "validation_failed")
    assert answer(caught).fields == {"eye_color": ["Please choose an eye colour from the list."]}
    assert load(db, actor.org_id, sid).full_name is None


def test_styles_are_saved_in_order_and_replaced(db: Database, demo: DemoData):
    actor, sid = start(db, demo.employees[0])
    with db.uow(org_id=actor.org_id) as uow:
        choose_styles(uow, actor, sid, {"styles": ["navy:shirt", "white:knit"], "format": "portrait"})
    with db.uow(org_id=actor.org_id) as uow:
        choose_styles(uow, actor, sid, {"styles": ["white:knit", "office:casual"]})
    session = load(db, actor.org_id, sid)
    assert list(Answers.of(session).styles) == ["white:knit", "office:casual"]
    assert session.format_id == "portrait"


def test_org_allowed_styles_limit_the_options_and_the_choice(db: Database, demo: DemoData):
    with db.uow(org_id=demo.org_id) as uow:
        uow.session.get(Organization, demo.org_id).allowed_styles = [
            "navy:shirt",
            "white:knit",
            "studio-grey:suit",
        ]
        uow.commit()
    actor, sid = start(db, demo.employees[0])
    with db.uow(org_id=actor.org_id) as uow:
        rules = sessions.rules_for(uow, load(db, actor.org_id, sid))
        # studio-grey:suit is pre-selected by the package: offered as included, not as a choice.
        assert [s.id for s in sessions.style_options(rules)] == ["navy:shirt", "white:knit"]
    with db.uow(org_id=actor.org_id) as uow, pytest.raises(IntakeRefused) as caught:
        choose_styles(uow, actor, sid, {"styles": ["navy:shirt", "outdoor:casual"]})
    assert answer(caught).fields == {
        "styles": ["“Green outdoors · Smart casual” isn't available for your organization."]
    }


def test_starter_package_limits(db: Database, demo: DemoData):
    actor, sid = start(db, demo.other_employee)  # globex: starter, 2 styles, standard only
    with db.uow(org_id=actor.org_id) as uow, pytest.raises(IntakeRefused) as caught:
        choose_styles(
            uow, actor, sid, {"styles": ["navy:shirt", "white:knit", "office:casual"], "format": "portrait"}
        )
    assert set(answer(caught).fields) == {"styles", "format"}


# --- submit -------------------------------------------------------------------------------------------------------
def test_submit_moves_the_session_writes_styles_and_one_outbox_message(db: Database, demo: DemoData):
    actor, sid = start(db, demo.employees[0])
    ready_to_submit(db, actor, sid, styles=("navy:shirt", "white:knit"))
    with db.uow(org_id=actor.org_id) as uow:
        outcome = submit(uow, actor, sid, CONFIRM)
    assert outcome.submitted_now
    session = load(db, actor.org_id, sid)
    assert session.state == SessionState.SUBMITTED
    assert session.submitted_at is not None
    assert [(c.style_id, c.preselected) for c in session.styles] == [
        ("navy:shirt", False),
        ("white:knit", False),
        ("studio-grey:suit", True),
        ("office:blazer", True),
        ("navy:suit", True),
    ]
    with db.session(all_orgs=True) as s:
        rows = list(s.scalars(select(OutboxMessage)))
    assert len(rows) == 1
    message = decode_message(rows[0].body)
    assert message.event is SESSION_SUBMITTED
    assert (message.org_id, message.session_id) == (actor.org_id, sid)
    assert message.data == {
        "package": "executive",
        "format": "standard",
        "styles": ["navy:shirt", "white:knit", "studio-grey:suit", "office:blazer", "navy:suit"],
        "photo_count": 1,
    }
    assert "Bea" not in rows[0].body  # events never carry personal info


def test_a_blocked_submit_changes_nothing(db: Database, demo: DemoData):
    actor, sid = start(db, demo.employees[0])
    ready_to_submit(db, actor, sid)
    with db.uow(org_id=actor.org_id) as uow, pytest.raises(IntakeRefused) as caught:
        # The page posts every field: a new name and style with the terms unticked.
        submit(uow, actor, sid, {"full_name": "Someone Else", "styles": ["white:knit"], "best_photos": True})
    assert answer(caught).status == 422
    assert answer(caught).fields == {"agree_terms": ["Please accept the terms to continue."]}
    session = load(db, actor.org_id, sid)
    assert session.state == SessionState.ONBOARDING
    assert session.full_name == "Bea Employee"
    assert list(Answers.of(session).styles) == ["navy:shirt"]
    assert outbox_count(db) == 0


def test_submit_without_photos_names_the_photos(db: Database, demo: DemoData):
    actor, sid = start(db, demo.employees[0])
    with db.uow(org_id=actor.org_id) as uow:
        save_info(uow, actor, sid, COMPLETE_INFO)
    with db.uow(org_id=actor.org_id) as uow, pytest.raises(IntakeRefused) as caught:
        submit(uow, actor, sid, {**CONFIRM, "styles": ["navy:shirt"]})
    assert answer(caught).fields == {"photos": ["Please add at least one photo of yourself."]}


def test_submitting_twice_submits_once(db: Database, demo: DemoData):
    actor, sid = start(db, demo.employees[0])
    ready_to_submit(db, actor, sid)
    with db.uow(org_id=actor.org_id) as uow:
        first = submit(uow, actor, sid, CONFIRM)
    with db.uow(org_id=actor.org_id) as uow:
        second = submit(uow, actor, sid, CONFIRM)
    assert (first.submitted_now, second.submitted_now) == (True, False)
    assert second.session.state == SessionState.SUBMITTED
    assert outbox_count(db) == 1


def test_concurrent_submits_submit_once(db: Database, demo: DemoData):
    actor, sid = start(db, demo.employees[0])
    ready_to_submit(db, actor, sid)
    outcomes = submit_concurrently(db, actor, sid, CONFIRM)
    assert sorted(outcomes) == [False, False, False, True]
    assert outbox_count(db) == 1


def test_after_submit_nothing_can_change(db: Database, demo: DemoData, blobs: LocalBlobStore):
    actor, sid = start(db, demo.employees[0])
    ready_to_submit(db, actor, sid)
    with db.uow(org_id=actor.org_id) as uow:
        submit(uow, actor, sid, CONFIRM)
    photo_id = load(db, actor.org_id, sid).photos[0].id
    attempts = [
        lambda uow: save_info(uow, actor, sid, {"full_name": "X"}),
        lambda uow: choose_styles(uow, actor, sid, {"styles": []}),
        lambda uow: photos.delete_photo(uow, blobs, actor, sid, photo_id),
    ]
    for attempt in attempts:
        with db.uow(org_id=actor.org_id) as uow, pytest.raises(IntakeRefused) as caught:
            attempt(uow)
        assert isinstance(caught.value, NotEditable)
        assert (answer(caught).status, answer(caught).code) == (409, "not_editable")


def test_a_rejected_session_resubmits_with_fresh_styles(db: Database, demo: DemoData):
    actor, sid = start(db, demo.employees[0])
    ready_to_submit(db, actor, sid)
    with db.uow(org_id=actor.org_id) as uow:
        submit(uow, actor, sid, CONFIRM)
    with db.uow(org_id=actor.org_id) as uow:
        session = uow.session.get(HeadshotSession, sid)
        for state in (SessionState.IN_REVIEW, SessionState.REJECTED, SessionState.ONBOARDING):
            session.move_to(state)
        uow.commit()
    with db.uow(org_id=actor.org_id) as uow:
        assert list(Answers.of(uow.session.get(HeadshotSession, sid)).styles) == ["navy:shirt"]
        choose_styles(uow, actor, sid, {"styles": ["white:knit"]})
    with db.uow(org_id=actor.org_id) as uow:
        assert submit(uow, actor, sid, CONFIRM).submitted_now
    with db.session(org_id=actor.org_id) as s:
        rows = s.scalars(select(ChosenStyle.style_id).where(ChosenStyle.session_id == sid)).all()
    assert rows == ["white:knit", "studio-grey:suit", "office:blazer", "navy:suit"]
    assert outbox_count(db, SESSION_SUBMITTED.routing_key) == 2


# --- uploads ------------------------------------------------------------------------------------------------------
def test_upload_stores_clean_and_original_blobs_with_the_face(
    db: Database, demo: DemoData, blobs: LocalBlobStore, intake_settings: Settings
):
    actor, sid = start(db, demo.employees[0])
    photo = photos.upload_photo(db, blobs, intake_settings, actor, sid, astronaut_png())
    assert photo.clean_key.startswith("photos/") and photo.clean_key.endswith(".jpg")
    assert photo.original_key.startswith("originals/") and photo.original_key.endswith(".png")
    assert blobs.get(photo.original_key) == astronaut_png()
    assert blobs.get(photo.clean_key)[:3] == b"\xff\xd8\xff"
    assert photo.face_box is not None and photo.face_box["w"] > 50
    assert len(photo.embedding or []) == 128
    thumb = photos.thumbnail(blobs, photo)
    assert thumb[:3] == b"\xff\xd8\xff" and len(thumb) < len(blobs.get(photo.clean_key))


def test_a_different_person_is_refused(db: Database, demo: DemoData, blobs: LocalBlobStore, intake_settings):
    actor, sid = start(db, demo.employees[0])
    # Someone else's face already accepted: an embedding far from the astronaut's.
    add_photo(db, actor.org_id, sid, embedding=[0.5] * 128)
    with pytest.raises(IntakeRefused) as caught:
        photos.upload_photo(db, blobs, intake_settings, actor, sid, astronaut_png())
    assert isinstance(caught.value, PhotoRefused)
    assert (answer(caught).status, answer(caught).code) == (422, "different_person")


def test_refused_uploads_leave_no_blobs(db: Database, demo: DemoData, blobs: LocalBlobStore, intake_settings):
    actor, sid = start(db, demo.employees[0])
    with pytest.raises(IntakeRefused):
        photos.upload_photo(db, blobs, intake_settings, actor, sid, b"not a photo")
    assert not blobs.root.exists() or not any(p.is_file() for p in blobs.root.rglob("*"))


def test_a_photo_checked_while_the_session_was_submitted_is_not_kept(
    db: Database, demo: DemoData, blobs: LocalBlobStore, intake_settings, monkeypatch
):
    actor, sid = start(db, demo.employees[0])
    ready_to_submit(db, actor, sid, embedding=astronaut_embedding())
    real_check = photos.check_photo

    def check_then_submit_elsewhere(*args):
        checked = real_check(*args)
        with db.uow(org_id=actor.org_id) as uow:  # the person's other tab presses Submit meanwhile
            submit(uow, actor, sid, CONFIRM)
        return checked

    monkeypatch.setattr(photos, "check_photo", check_then_submit_elsewhere)
    with pytest.raises(IntakeRefused) as caught:
        photos.upload_photo(db, blobs, intake_settings, actor, sid, astronaut_png())
    assert answer(caught).status == 409
    assert len(load(db, actor.org_id, sid).photos) == 1
    assert not any(p.is_file() for p in blobs.root.rglob("*"))


def test_at_most_max_photos_per_session(db: Database, demo: DemoData, blobs: LocalBlobStore, intake_settings):
    actor, sid = start(db, demo.employees[0])
    for _ in range(MAX_PHOTOS):
        add_photo(db, actor.org_id, sid)
    with pytest.raises(IntakeRefused) as caught:
        photos.upload_photo(db, blobs, intake_settings, actor, sid, astronaut_png())
    assert isinstance(caught.value, PhotoRefused)
    assert (answer(caught).status, answer(caught).code) == (422, "too_many_photos")


def test_upload_rate_limit_counts_attempts_in_the_last_minute(
    db: Database, demo: DemoData, blobs: LocalBlobStore, intake_settings: Settings
):
    settings = intake_settings.replace(UPLOADS_PER_MINUTE=2)
    actor, sid = start(db, demo.employees[0])
    t0 = utcnow()
    for seconds in (0, 10):
        with pytest.raises(IntakeRefused) as refused:  # refused photos count too: the checks cost the same
            photos.upload_photo(db, blobs, settings, actor, sid, b"text", now=t0 + timedelta(seconds=seconds))
        assert answer(refused).status == 415
    with pytest.raises(IntakeRefused) as limited:
        photos.upload_photo(db, blobs, settings, actor, sid, b"text", now=t0 + timedelta(seconds=20))
    assert (answer(limited).status, answer(limited).code) == (429, "too_many_uploads")
    assert answer(limited).headers == {"Retry-After": "40"}
    assert isinstance(limited.value, RateLimited) and limited.value.retry_after == 40
    assert "wait 40 seconds" in limited.value.message
    # A minute after the first attempt there is room again; another person is never affected.
    with pytest.raises(IntakeRefused) as later:
        photos.upload_photo(db, blobs, settings, actor, sid, b"text", now=t0 + timedelta(seconds=61))
    assert answer(later).status == 415
    carl, carl_sid = start(db, demo.employees[1])
    with pytest.raises(IntakeRefused) as other:
        photos.upload_photo(db, blobs, settings, carl, carl_sid, b"text", now=t0 + timedelta(seconds=21))
    assert answer(other).status == 415


def test_delete_photo_removes_row_and_blobs(
    db: Database, demo: DemoData, blobs: LocalBlobStore, intake_settings
):
    actor, sid = start(db, demo.employees[0])
    photo = photos.upload_photo(db, blobs, intake_settings, actor, sid, astronaut_png())
    with db.uow(org_id=actor.org_id) as uow:
        photos.delete_photo(uow, blobs, actor, sid, photo.id)
    assert not blobs.exists(photo.clean_key) and not blobs.exists(photo.original_key)
    with db.session(org_id=actor.org_id) as s:
        assert s.get(Photo, photo.id) is None
    with db.uow(org_id=actor.org_id) as uow, pytest.raises(IntakeRefused) as caught:
        photos.delete_photo(uow, blobs, actor, sid, photo.id)
    assert isinstance(caught.value, NotFound)
    assert (answer(caught).status, answer(caught).message) == (404, "No such photo.")
