"""The intake app through Flask's test client: sign-in, every upload verdict, tenancy, CSRF,
validation errors, double submit, status, the OpenAPI document."""

from __future__ import annotations

import io

import itsdangerous.timed
import pytest
from flask import Flask

from libs.contracts import SESSION_SUBMITTED
from libs.db import Database
from libs.db.demo import DemoData
from libs.imaging import REASONS
from libs.storage import LocalBlobStore
from libs.web import invite_url, sign
from services.intake.app import create_app
from services.intake.photos import MAX_PHOTOS
from tests.support.intake import (
    COMPLETE_INFO,
    add_photo,
    astronaut_png,
    coffee_png,
    error_of,
    intake_settings_for,
    outbox_count,
    sign_in,
    tiny_png,
    upload,
)

CONFIRM = {"agree_terms": True, "best_photos": True}


# --- sign in --------------------------------------------------------------------------------------------
def test_invite_link_signs_in_and_opens_a_new_onboarding_session(app: Flask, intake_settings, demo: DemoData):
    bea = sign_in(app, intake_settings, demo.employees[0])
    page = bea.client.get(f"/sessions/{bea.session_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Hi Bea" in html and "Submit my photos" in html
    assert "Included with your Executive package" in html
    assert "Portrait 4:5" in html  # executive offers both formats
    link = invite_url(intake_settings, demo.employees[0]).removeprefix(intake_settings.public_url)
    set_cookie = app.test_client().get(link).headers["Set-Cookie"]
    assert set_cookie.startswith("headshots_session=")
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie and "Secure" not in set_cookie


def test_session_cookie_is_secure_when_configured(tmp_path, sqlite_url, demo: DemoData, db: Database):
    settings = intake_settings_for(tmp_path, sqlite_url, SECURE_COOKIES=True)
    client = create_app(settings, db=db, checks={}).test_client()
    response = client.get(invite_url(settings, demo.employees[0]).removeprefix(settings.public_url))
    assert "Secure" in response.headers["Set-Cookie"]


def test_starter_package_offers_only_the_standard_format(app: Flask, intake_settings, demo: DemoData):
    dana = sign_in(app, intake_settings, demo.other_employee)
    html = dana.client.get(f"/sessions/{dana.session_id}").get_data(as_text=True)
    assert "Standard 3:2" in html and "Portrait 4:5" not in html
    assert "Pick up to 2 more" in html


def test_expired_invite_gets_a_friendly_page(app: Flask, intake_settings, demo: DemoData, monkeypatch):
    real = itsdangerous.timed.TimestampSigner.get_timestamp
    monkeypatch.setattr(
        itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: real(self) - 3 * 3600
    )
    link = invite_url(intake_settings, demo.employees[0]).removeprefix(intake_settings.public_url)
    monkeypatch.undo()
    response = app.test_client().get(link)
    assert response.status_code == 410
    html = response.get_data(as_text=True)
    assert "This sign-in link has expired" in html and "ask your admin" in html
    assert "Set-Cookie" not in response.headers or "user_id" not in response.headers["Set-Cookie"]


def test_invalid_invite_gets_a_friendly_page(app: Flask, intake_settings, demo: DemoData):
    for token in ("garbage", sign(intake_settings.replace(SECRET_KEY="other"), "invite", {"user_id": "x"})):
        response = app.test_client().get(f"/invite/{token}")
        assert response.status_code == 400
        assert "This sign-in link isn't valid" in response.get_data(as_text=True)
    # A valid signature for a user of another org than the link says is not a sign-in either.
    forged = sign(intake_settings, "invite", {"user_id": demo.employees[0].id, "org_id": demo.other_org_id})
    assert app.test_client().get(f"/invite/{forged}").status_code == 400


def test_pages_and_api_need_a_sign_in(app: Flask, demo: DemoData):
    client = app.test_client()
    page = client.get("/sessions/anything")
    assert page.status_code == 401 and "Please sign in" in page.get_data(as_text=True)
    assert error_of(client.get("/api/v1/sessions/current"))["code"] == "unauthorized"
    assert "sign-in link your admin sent you" in client.get("/").get_data(as_text=True)


# --- every photo verdict, as the upload endpoint reports it ------------------------------------------------------------
def test_a_good_portrait_is_accepted(app: Flask, intake_settings, demo: DemoData, blobs: LocalBlobStore):
    bea = sign_in(app, intake_settings, demo.employees[0])
    response = upload(bea, astronaut_png(), "me.png")
    assert response.status_code == 201, response.data
    photo = response.json
    assert (photo["width"], photo["height"]) == (512, 512)
    assert set(photo["face"]) == {"x", "y", "w", "h"}
    thumb = bea.client.get(photo["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg"
    listed = bea.client.get(bea.api("/photos")).json
    assert [p["id"] for p in listed] == [photo["id"]]
    assert "embedding" not in listed[0]  # biometric data never leaves the server


@pytest.mark.parametrize(
    ("data", "status", "code", "says"),
    [
        (coffee_png, 422, "no_face", "couldn't find a face"),
        (tiny_png, 422, "too_small", "200 x 200 pixels; it needs to be at least"),
        (lambda: b"Hello, I am a text file, not a photo.\n", 415, "unsupported_format", "JPEG, PNG or HEIC"),
        (lambda: b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, 422, "corrupt", "damaged or incomplete"),
    ],
    ids=["coffee-no-face", "tiny-too-small", "text-415", "truncated-png-corrupt"],
)
def test_a_refused_photo_gets_its_reason(app, intake_settings, demo: DemoData, data, status, code, says):
    bea = sign_in(app, intake_settings, demo.employees[0])
    response = upload(bea, data())
    assert response.status_code == status
    error = error_of(response)
    assert error["code"] == code
    # The person reads what is wrong with this photo, in the words the photo checks use for it.
    side = intake_settings.MIN_PHOTO_SIDE
    expected = {"too_small": f"This photo is 200 x 200 pixels; it needs to be at least {side} x {side}."}
    assert error["message"] == expected.get(code, REASONS[code][1])
    assert says in error["message"]
    assert bea.client.get(bea.api("/photos")).json == []


def test_a_file_over_the_photo_limit_is_413(tmp_path, sqlite_url, demo: DemoData, db: Database):
    settings = intake_settings_for(tmp_path, sqlite_url, MAX_UPLOAD_BYTES=1024 * 1024)
    app = create_app(settings, db=db, checks={})
    bea = sign_in(app, settings, demo.employees[0])
    # Under the request limit (photo limit + 1 MB of form overhead): the photo check refuses it.
    response = upload(bea, b"\xff\xd8\xff" + b"\x00" * (1536 * 1024))
    assert response.status_code == 413
    assert error_of(response)["code"] == "file_too_large"
    # Over the request limit: refused by MAX_CONTENT_LENGTH before the body is read.
    response = upload(bea, b"\xff\xd8\xff" + b"\x00" * (2 * 1024 * 1024 + 100_000))
    assert response.status_code == 413
    assert error_of(response)["code"] == "too_large"


def test_upload_needs_a_file(app: Flask, intake_settings, demo: DemoData):
    bea = sign_in(app, intake_settings, demo.employees[0])
    response = bea.client.post(bea.api("/photos"), data={}, headers=bea.headers)
    assert response.status_code == 422
    assert error_of(response)["fields"] == {"photo": ["Please attach a photo in the form field 'photo'."]}


def test_uploads_are_rate_limited_per_person(tmp_path, sqlite_url, demo: DemoData, db: Database):
    settings = intake_settings_for(tmp_path, sqlite_url, UPLOADS_PER_MINUTE=2)
    app = create_app(settings, db=db, checks={})
    bea = sign_in(app, settings, demo.employees[0])
    assert [upload(bea, b"text").status_code for _ in range(2)] == [415, 415]
    limited = upload(bea, b"text")
    assert limited.status_code == 429
    assert error_of(limited)["code"] == "too_many_uploads"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    carl = sign_in(app, settings, demo.employees[1])
    assert upload(carl, b"text").status_code == 415


def test_too_many_photos(app: Flask, intake_settings, demo: DemoData, db: Database):
    bea = sign_in(app, intake_settings, demo.employees[0])
    for _ in range(MAX_PHOTOS):
        add_photo(db, demo.org_id, bea.session_id)
    response = upload(bea, astronaut_png())
    assert (response.status_code, error_of(response)["code"]) == (422, "too_many_photos")


def test_delete_photo(app: Flask, intake_settings, demo: DemoData):
    bea = sign_in(app, intake_settings, demo.employees[0])
    photo_id = upload(bea, astronaut_png()).json["id"]
    assert bea.client.delete(bea.api(f"/photos/{photo_id}"), headers=bea.headers).status_code == 204
    assert bea.client.get(bea.api("/photos")).json == []
    assert bea.client.delete(bea.api(f"/photos/{photo_id}"), headers=bea.headers).status_code == 404


# --- tenancy and ownership -----------------------------------------------------------------------------------------
def test_another_persons_and_another_orgs_session_answer_404(app: Flask, intake_settings, demo: DemoData, db):
    bea = sign_in(app, intake_settings, demo.employees[0])
    photo_id = add_photo(db, demo.org_id, bea.session_id)
    for intruder in (demo.employees[1], demo.other_employee):
        other = sign_in(app, intake_settings, intruder)
        sid = bea.session_id
        requests = [
            other.client.get(f"/api/v1/sessions/{sid}"),
            other.client.get(f"/api/v1/sessions/{sid}/status"),
            other.client.get(f"/api/v1/sessions/{sid}/photos"),
            other.client.post(
                f"/api/v1/sessions/{sid}/photos",
                data={"photo": (io.BytesIO(astronaut_png()), "x.png")},
                headers=other.headers,
            ),
            other.client.delete(f"/api/v1/sessions/{sid}/photos/{photo_id}", headers=other.headers),
            other.client.put(f"/api/v1/sessions/{sid}/info", json=COMPLETE_INFO, headers=other.headers),
            other.client.put(f"/api/v1/sessions/{sid}/styles", json={"styles": []}, headers=other.headers),
            other.client.post(f"/api/v1/sessions/{sid}/submit", json=CONFIRM, headers=other.headers),
            other.client.get(f"/sessions/{sid}"),
            other.client.get(f"/sessions/{sid}/waiting"),
            other.client.get(f"/sessions/{sid}/results"),
            other.client.get(f"/sessions/{sid}/photos/{photo_id}/thumb.jpg"),
            other.client.post(f"/sessions/{sid}/submit", data={"csrf_token": other.csrf, **CONFIRM}),
        ]
        assert [r.status_code for r in requests] == [404] * len(requests)
    assert bea.client.get(bea.api("/photos")).json[0]["id"] == photo_id
    assert outbox_count(db) == 0


def test_a_photo_of_another_session_answers_404(app: Flask, intake_settings, demo: DemoData, db):
    bea = sign_in(app, intake_settings, demo.employees[0])
    carl = sign_in(app, intake_settings, demo.employees[1])
    carls_photo = add_photo(db, demo.org_id, carl.session_id)
    assert bea.client.get(f"/sessions/{bea.session_id}/photos/{carls_photo}/thumb.jpg").status_code == 404
    assert bea.client.delete(bea.api(f"/photos/{carls_photo}"), headers=bea.headers).status_code == 404


# --- CSRF ------------------------------------------------------------------------------------------------------------
def test_writes_without_the_csrf_token_are_refused(app: Flask, intake_settings, demo: DemoData, db):
    bea = sign_in(app, intake_settings, demo.employees[0])
    attempts = [
        bea.client.put(bea.api("/info"), json=COMPLETE_INFO),
        bea.client.put(bea.api("/info"), json=COMPLETE_INFO, headers={"X-CSRF-Token": "forged"}),
        bea.client.post(bea.api("/photos"), data={"photo": (io.BytesIO(astronaut_png()), "a.png")}),
        bea.client.post(bea.api("/submit"), json=CONFIRM),
        bea.client.post(f"/sessions/{bea.session_id}/submit", data=CONFIRM),
    ]
    for response in attempts:
        assert response.status_code == 400
        assert "csrf" in response.get_data(as_text=True).lower() or "expired" in response.get_data(
            as_text=True
        )
    assert bea.client.get(bea.api()).json["personal_info"]["full_name"] is None
    assert bea.client.get(bea.api("/photos")).json == []


# --- personal info, styles, submit ------------------------------------------------------------------------------------
def test_api_validation_errors_name_their_fields(app: Flask, intake_settings, demo: DemoData):
    bea = sign_in(app, intake_settings, demo.employees[0])
    response = bea.client.put(
        bea.api("/info"), json={"gender": "robot", "shoe_size": 44}, headers=bea.headers
    )
    assert response.status_code == 422
    assert error_of(response)["fields"] == {
        "gender": ["Please choose a gender from the list."],
        "shoe_size": ["Unknown field."],
    }
    response = bea.client.put(bea.api("/styles"), json={"styles": "navy:suit"}, headers=bea.headers)
    assert error_of(response)["fields"] == {"styles": ["Not a valid list."]}
    # Items that are not text are named by their place in the list, when saved and at submit.
    for path, method in (("/styles", bea.client.put), ("/submit", bea.client.post)):
        response = method(bea.api(path), json={"styles": [{}, "navy:suit", ["x"]]}, headers=bea.headers)
        assert response.status_code == 422, path
        assert error_of(response)["fields"]["styles"] == {
            "0": ["Not a valid string."],
            "2": ["Not a valid string."],
        }
    assert bea.client.get(bea.api()).json["styles"] == []  # nothing of it was kept


def test_the_whole_journey_through_the_api(app: Flask, intake_settings, demo: DemoData, db: Database):
    bea = sign_in(app, intake_settings, demo.employees[0])
    assert upload(bea, astronaut_png()).status_code == 201
    info = bea.client.put(bea.api("/info"), json=COMPLETE_INFO, headers=bea.headers)
    assert info.status_code == 200 and info.json == COMPLETE_INFO
    styles = bea.client.put(
        bea.api("/styles"), json={"styles": ["navy:shirt"], "format": "portrait"}, headers=bea.headers
    )
    assert styles.json == {
        "styles": ["navy:shirt"],
        "format": "portrait",
        "preselected": ["studio-grey:suit", "office:blazer", "navy:suit"],
    }
    session = bea.client.get(bea.api()).json
    assert session["state"] == "onboarding" and len(session["photos"]) == 1
    assert session["package"]["max_styles"] == 8
    assert "navy:shirt" in [s["id"] for s in session["options"]["styles"]]

    first = bea.client.post(bea.api("/submit"), json=CONFIRM, headers=bea.headers)
    second = bea.client.post(bea.api("/submit"), json=CONFIRM, headers=bea.headers)
    assert first.status_code == second.status_code == 200
    assert first.json == second.json
    assert first.json["state"] == "submitted" and first.json["stage"] == "Submitted"
    assert outbox_count(db, SESSION_SUBMITTED.routing_key) == 1

    status = bea.client.get(bea.api("/status")).json
    assert status["progress"] == {"done": 0, "total": 0} and status["state"] == "submitted"
    after = bea.client.put(bea.api("/info"), json={"full_name": "X"}, headers=bea.headers)
    assert (after.status_code, error_of(after)["code"]) == (409, "not_editable")
    assert upload(bea, astronaut_png()).status_code == 409


def test_a_blocked_api_submit_names_each_field_and_publishes_nothing(
    app, intake_settings, demo: DemoData, db
):
    bea = sign_in(app, intake_settings, demo.employees[0])
    response = bea.client.post(bea.api("/submit"), json={"best_photos": True}, headers=bea.headers)
    assert response.status_code == 422
    assert set(error_of(response)["fields"]) == {
        "photos",
        "full_name",
        "gender",
        "eye_color",
        "glasses",
        "styles",
        "agree_terms",
    }
    assert outbox_count(db) == 0
    assert bea.client.get(bea.api("/status")).json["state"] == "onboarding"


# --- the pages' form path -----------------------------------------------------------------------------------------------
def page_form(csrf: str, **changes) -> dict:
    form = {
        "csrf_token": csrf,
        **COMPLETE_INFO,
        "styles": ["navy:shirt", "white:knit"],
        "format": "standard",
        "agree_terms": "true",
        "best_photos": "true",
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v is not None}


def test_an_incomplete_form_shows_each_error_next_to_its_field(app, intake_settings, demo: DemoData, db):
    bea = sign_in(app, intake_settings, demo.employees[0])
    response = bea.client.post(
        f"/sessions/{bea.session_id}/submit",
        data=page_form(bea.csrf, gender=None, styles=[], agree_terms=None, full_name="Bea Typed"),
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Please fix these 4 things before submitting" in html
    for message in (
        "Please add at least one photo of yourself.",
        "Please choose a gender.",
        "Please choose at least one style.",
        "Please accept the terms to continue.",
    ):
        assert message in html
    assert 'value="Bea Typed"' in html  # what was typed is kept on the page
    assert bea.client.get(bea.api()).json["personal_info"]["full_name"] is None  # but not saved
    assert outbox_count(db) == 0


def test_the_form_submits_once_and_goes_to_the_waiting_page(app, intake_settings, demo: DemoData, db):
    bea = sign_in(app, intake_settings, demo.employees[0])
    add_photo(db, demo.org_id, bea.session_id)
    url = f"/sessions/{bea.session_id}/submit"
    first = bea.client.post(url, data=page_form(bea.csrf))
    replay = bea.client.post(url, data=page_form(bea.csrf))
    waiting = f"/sessions/{bea.session_id}/waiting"
    assert (first.status_code, first.headers["Location"]) == (303, waiting)
    assert (replay.status_code, replay.headers["Location"]) == (303, waiting)
    assert outbox_count(db) == 1
    page = bea.client.get(waiting)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Thanks, your photos are in!" in html and "Learning your likeness" in html
    assert "Waiting for review" not in html  # Acme approves automatically: no review step shown
    # The onboarding page now sends the person to the waiting page, and so does the home page.
    assert bea.client.get(f"/sessions/{bea.session_id}").headers["Location"] == waiting
    assert bea.client.get("/").headers["Location"] == waiting


def test_photos_without_javascript(app, intake_settings, demo: DemoData):
    bea = sign_in(app, intake_settings, demo.employees[0])
    response = bea.client.post(
        f"/sessions/{bea.session_id}/photos",
        data={
            "csrf_token": bea.csrf,
            "photos": [(io.BytesIO(astronaut_png()), "me.png"), (io.BytesIO(coffee_png()), "cup.png")],
        },
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    html = response.get_data(as_text=True)
    assert "me.png: looks good." in html
    assert "cup.png: We couldn&#39;t find a face" in html
    photos = bea.client.get(bea.api("/photos")).json
    assert len(photos) == 1
    deleted = bea.client.post(
        f"/sessions/{bea.session_id}/photos/{photos[0]['id']}/delete", data={"csrf_token": bea.csrf}
    )
    assert deleted.status_code == 303
    assert bea.client.get(bea.api("/photos")).json == []


# --- the API document -----------------------------------------------------------------------------------------------
def test_openapi_document_is_built_from_the_schemas(app: Flask):
    spec = app.test_client().get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    assert set(paths) >= {
        "/api/v1/sessions/current",
        "/api/v1/sessions/{session_id}/photos",
        "/api/v1/sessions/{session_id}/photos/{photo_id}",
        "/api/v1/sessions/{session_id}/info",
        "/api/v1/sessions/{session_id}/styles",
        "/api/v1/sessions/{session_id}/submit",
        "/api/v1/sessions/{session_id}/status",
    }
    schemas = spec["components"]["schemas"]
    assert schemas["Submission"]["properties"]["gender"]["enum"] == ["female", "male", "non_binary"]
    assert (
        "multipart/form-data"
        in paths["/api/v1/sessions/{session_id}/photos"]["post"]["requestBody"]["content"]
    )
    assert set(paths["/api/v1/sessions/{session_id}/photos"]["post"]["responses"]) >= {
        "201",
        "409",
        "413",
        "415",
        "422",
        "429",
    }
    assert schemas["Error"]["properties"]["error"]["$ref"].endswith("ErrorBody")


def test_answers_are_kept_out_of_shared_caches(app: Flask, intake_settings, demo: DemoData):
    bea = sign_in(app, intake_settings, demo.employees[0])
    for path in (f"/sessions/{bea.session_id}", bea.api(), bea.api("/status")):
        response = bea.client.get(path)
        assert response.headers["Cache-Control"] == "private, no-store"
        assert response.headers["Referrer-Policy"] == "same-origin"
