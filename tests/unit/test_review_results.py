"""Team results: completed members listed; ZIPs of one person or everyone, streamed; another org's
member is not found."""

from __future__ import annotations

import io
import zipfile

from libs.contracts import SessionState
from libs.db import Headshot
from libs.db.demo import DemoData
from tests.support.review import (  # noqa: F401  (fixtures)
    app_fixture,
    blobs_fixture,
    console_sign_in,
    db_fixture,
    demo_fixture,
    make_session,
    review_settings_fixture,
)


def add_headshots(db, blobs, org_id: str, session_id: str, n: int) -> None:
    with db.uow(org_id=org_id) as uow:
        for i in range(n):
            key = blobs.put(f"image {session_id} {i}".encode(), kind="headshot", ext="png")
            uow.session.add(
                Headshot(
                    org_id=org_id,
                    session_id=session_id,
                    style_id="navy:suit",
                    index_in_style=i,
                    position=i,
                    blob_key=key,
                    width=8,
                    height=8,
                    seed=i,
                )
            )
        uow.commit()


def test_results_and_their_zips(app, review_settings, db, blobs, demo: DemoData):
    bea, carl = demo.employees
    add_headshots(db, blobs, demo.org_id, make_session(db, demo.org_id, bea.id, SessionState.COMPLETED), 2)
    add_headshots(db, blobs, demo.org_id, make_session(db, demo.org_id, carl.id, SessionState.COMPLETED), 3)
    make_session(db, demo.org_id, carl.id, SessionState.TRAINING)  # a renewal in progress
    theirs = make_session(db, demo.other_org_id, demo.other_employee.id, SessionState.COMPLETED)
    add_headshots(db, blobs, demo.other_org_id, theirs, 1)

    client, _ = console_sign_in(app, review_settings, demo.admin)
    page = client.get("/results").get_data(as_text=True)
    assert "2 members with finished headshots" in page and "dana@globex.example" not in page

    everyone = client.get("/results/all.zip")
    assert everyone.status_code == 200 and everyone.is_streamed
    names = zipfile.ZipFile(io.BytesIO(everyone.data)).namelist()
    assert len(names) == 5 and {n.split("/")[0] for n in names} == {bea.email, carl.email}
    one = zipfile.ZipFile(io.BytesIO(client.get(f"/results/{bea.id}.zip").data))
    assert one.namelist() == [f"{bea.email}/navy-suit-1.png", f"{bea.email}/navy-suit-2.png"]
    assert one.testzip() is None
    assert client.get(f"/results/{demo.other_employee.id}.zip").status_code == 404
