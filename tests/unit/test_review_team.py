"""Team and invite pages: invites by address, pasted list or CSV (all or nothing, reported line by
line, no duplicates), member.invited per person, resend, deactivate (links stop signing in), and
the team list's status, counts, search, filter and pages."""

from __future__ import annotations

import csv
import io

from sqlalchemy import func, select

from libs.contracts import MEMBER_INVITED, SessionState
from libs.db import Headshot, User
from libs.db.demo import DemoData
from libs.web import invite_url
from services.intake.app import create_app as create_intake_app
from services.review import csvimport
from services.review.members import PAGE_SIZE
from tests.support.review import (  # noqa: F401  (fixtures)
    app_fixture,
    blobs_fixture,
    console_sign_in,
    db_fixture,
    demo_fixture,
    make_session,
    outbox,
    review_settings_fixture,
)

S = SessionState


def members(db, org_id: str) -> dict[str, User]:
    with db.session(org_id=org_id) as s:
        return {u.email: u for u in s.scalars(select(User))}


def test_invites_from_an_address_and_a_pasted_list(app, review_settings, db, demo: DemoData):
    client, csrf = console_sign_in(app, review_settings, demo.admin)
    pasted = "New.One@Example.com, New One\n\nnew.two@example.com\nbea@acme.example\n"
    response = client.post(
        "/invite", data={"csrf_token": csrf, "email": "solo@example.com", "emails": pasted}
    )
    assert response.status_code == 303
    everyone = members(db, demo.org_id)
    assert {"solo@example.com", "new.one@example.com", "new.two@example.com"} <= set(everyone)
    assert everyone["new.one@example.com"].display_name == "New One"
    assert len(everyone) == 6  # admin, bea, carl + three new: bea was not added twice
    events = outbox(db, MEMBER_INVITED.routing_key)
    assert sorted(e["data"]["user_id"] for e in events) == sorted(
        everyone[e].id for e in ("solo@example.com", "new.one@example.com", "new.two@example.com")
    )
    assert {e["data"]["invited_by"] for e in events} == {demo.admin.id}
    assert all("@" not in str(e) for e in events)  # ids only, never the address


def test_a_list_with_bad_lines_imports_nothing_and_says_which(app, review_settings, db, demo: DemoData):
    client, csrf = console_sign_in(app, review_settings, demo.admin)
    pasted = "ok@example.com\nnot-an-address\nok@example.com\nx@example.com,X,extra\n"
    response = client.post("/invite", data={"csrf_token": csrf, "emails": pasted})
    text = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Line 2: Not an e-mail address." in text
    assert "Line 3: Same address as line 1." in text
    assert "Line 4: Too many columns" in text
    assert "ok@example.com" not in members(db, demo.org_id) and outbox(db, MEMBER_INVITED.routing_key) == []
    empty = client.post("/invite", data={"csrf_token": csrf, "emails": "  \n"})
    assert empty.status_code == 422 and "at least one address" in empty.get_data(as_text=True)


def upload(client, csrf: str, data: bytes):
    return client.post(
        "/invite",
        data={"csrf_token": csrf, "file": (io.BytesIO(data), "people.csv")},
        content_type="multipart/form-data",
    )


def test_csv_uploads_and_their_limits(app, review_settings, db, demo: DemoData):
    client, csrf = console_sign_in(app, review_settings, demo.admin)
    good = '\ufeffemail,name\r\nana@example.com,"Ana, Jr."\r\nbo@example.com,Bo\r\n'.encode()
    assert upload(client, csrf, good).status_code == 303
    assert members(db, demo.org_id)["ana@example.com"].display_name == "Ana, Jr."

    latin1 = upload(client, csrf, "email,name\ncé@example.com,Zoé\n".encode("latin-1"))
    assert latin1.status_code == 422 and "not UTF-8" in latin1.get_data(as_text=True)
    too_long = upload(client, csrf, b"a@example.com\n" * (csvimport.MAX_LINES + 1))
    assert too_long.status_code == 422 and "at most 100,000" in too_long.get_data(as_text=True)
    too_big = upload(client, csrf, b"#" * (csvimport.MAX_CSV_BYTES + 1))
    assert too_big.status_code == 413
    assert len(members(db, demo.org_id)) == 5


def test_resend_and_deactivate(app, review_settings, db, demo: DemoData):
    client, csrf = console_sign_in(app, review_settings, demo.admin)
    bea = demo.employees[0]
    assert client.post(f"/members/{bea.id}/resend", data={"csrf_token": csrf}).status_code == 303
    [event] = outbox(db, MEMBER_INVITED.routing_key)
    assert event["data"] == {"user_id": bea.id, "invited_by": demo.admin.id}

    assert client.post(f"/members/{bea.id}/deactivate", data={"csrf_token": csrf}).status_code == 303
    assert members(db, demo.org_id)[bea.email].active is False
    # Intake's invite view honours it: the person's link no longer signs in.
    intake = create_intake_app(review_settings, db=db, checks={})
    link = invite_url(review_settings, bea).removeprefix(review_settings.public_url)
    assert intake.test_client().get(link).status_code == 400
    assert client.post(f"/members/{bea.id}/resend", data={"csrf_token": csrf}).status_code == 409
    assert client.post(f"/members/{demo.admin.id}/deactivate", data={"csrf_token": csrf}).status_code == 409
    # Another organization's member is not found.
    other = demo.other_employee.id
    assert client.post(f"/members/{other}/deactivate", data={"csrf_token": csrf}).status_code == 404
    assert client.post(f"/members/{other}/resend", data={"csrf_token": csrf}).status_code == 404


def test_the_team_page_shows_status_counts_search_filter_and_pages(app, review_settings, db, demo: DemoData):
    bea, carl = demo.employees
    old = make_session(db, demo.org_id, bea.id, S.COMPLETED, age_minutes=100)
    with db.uow(org_id=demo.org_id) as uow:
        for i in range(3):
            uow.session.add(
                Headshot(
                    org_id=demo.org_id,
                    session_id=old,
                    style_id="navy:suit",
                    index_in_style=i,
                    blob_key=f"k{i}",
                    width=8,
                    height=8,
                    seed=i,
                )
            )
        uow.session.add_all(
            User(org_id=demo.org_id, email=f"p{i:03}@example.com", display_name=f"Person {i}")
            for i in range(PAGE_SIZE + 5)
        )
        uow.commit()
    make_session(db, demo.org_id, carl.id, S.TRAINING)
    client, _ = console_sign_in(app, review_settings, demo.admin)

    page = client.get("/team").get_data(as_text=True)
    assert "1 of 58</strong> have headshots" in page
    assert "Page 1 of 2" in page
    found = client.get("/team?q=BEA").get_data(as_text=True)
    assert "bea@acme.example" in found and "Completed" in found and ">3<" in found
    assert "carl@acme.example" not in found
    running = client.get("/team?status=in_progress").get_data(as_text=True)
    assert "carl@acme.example" in running and "bea@acme.example" not in running
    second = client.get("/team?status=invited&page=2").get_data(as_text=True)
    assert "Page 2 of 2" in second and "p054@example.com" in second
    with db.session(org_id=demo.org_id) as s:
        assert s.scalar(select(func.count()).select_from(User)) == 58


def test_the_team_export_is_streamed_and_formula_safe(app, review_settings, db, demo: DemoData):
    with db.uow(org_id=demo.org_id) as uow:
        uow.session.add(
            User(org_id=demo.org_id, email="x@example.com", display_name='=HYPERLINK("http://evil")')
        )
        uow.commit()
    client, _ = console_sign_in(app, review_settings, demo.admin)
    response = client.get("/team.csv")
    assert response.status_code == 200 and response.is_streamed and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["email", "name", "status", "last_activity", "headshots"]
    assert len(rows) == 5
    assert rows[-1][:2] == ["x@example.com", '\'=HYPERLINK("http://evil")']
