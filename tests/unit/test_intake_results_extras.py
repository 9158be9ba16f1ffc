"""The results page's extras and the waiting page's thumbnails: best likeness first, favourites
(and their ZIP), a square crop for profile pictures, the studio engine's clothing note, thumbnails
through signed links, and pages that need no inline script or style (strict CSP)."""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np
from flask import Flask
from PIL import Image

from libs.contracts import SessionState
from libs.db import Database, Headshot, HeadshotSession
from libs.db.demo import DemoData
from libs.settings import Settings
from libs.storage import LocalBlobStore
from services.intake.app import create_app
from tests.support.intake import (
    png_bytes,
    sign_in,
)

S = SessionState
SHOT_IDS = re.compile(r'<figure class="shot[^"]*" id="h-([0-9a-f-]{36})"')
SQUARE = re.compile(r'href="(/download/[^"?]+)\?download=1" download>Square')
FAVOURITES_ZIP = re.compile(r'href="(/download/[^"?]+)" download>★')


def headshots(
    db: Database, blobs: LocalBlobStore, org_id: str, session_id: str, likeness: list[float | None]
) -> list[str]:
    ids = []
    with db.uow(org_id=org_id) as uow:
        hs = uow.session.get(HeadshotSession, session_id)
        assert hs is not None
        hs.state = S.COMPLETED
        for index, score in enumerate(likeness):
            data = png_bytes(np.full((600, 400, 3), 30 * index, dtype=np.uint8))
            shot = Headshot(
                org_id=org_id,
                session_id=session_id,
                style_id="navy:shirt",
                index_in_style=index,
                position=index,
                blob_key=blobs.put(data, kind="headshots", ext="png"),
                width=400,
                height=600,
                seed=index,
                likeness=score,
            )
            uow.session.add(shot)
            uow.session.flush()
            ids.append(shot.id)
        uow.commit()
    return ids


def main_of(html: str) -> str:
    return html[html.index("<main") : html.index("</main>")]


def test_best_likeness_first_within_a_style(
    app: Flask, intake_settings: Settings, demo: DemoData, db, blobs
) -> None:
    bea = sign_in(app, intake_settings, demo.employees[0])
    ids = headshots(db, blobs, demo.org_id, bea.session_id, [0.61, None, 0.93, 0.75])
    html = bea.client.get(f"/sessions/{bea.session_id}/results").get_data(as_text=True)
    assert SHOT_IDS.findall(html) == [ids[2], ids[3], ids[0], ids[1]]
    assert "Likeness 93%" in html


def test_favourites_are_kept_and_downloaded_together(
    app: Flask, intake_settings: Settings, demo: DemoData, db, blobs
) -> None:
    bea = sign_in(app, intake_settings, demo.employees[0])
    ids = headshots(db, blobs, demo.org_id, bea.session_id, [None, None, None])
    page = f"/sessions/{bea.session_id}/results"
    assert FAVOURITES_ZIP.findall(bea.client.get(page).get_data(as_text=True)) == []
    mark = f"/sessions/{bea.session_id}/headshots/{ids[1]}/favourite"
    response = bea.client.post(mark, data={"favourite": "1", "csrf_token": bea.csrf})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"#h-{ids[1]}")
    html = bea.client.get(page).get_data(as_text=True)
    assert html.count('aria-pressed="true"') == 1
    (zip_url,) = FAVOURITES_ZIP.findall(html)
    names = zipfile.ZipFile(io.BytesIO(bea.client.get(zip_url).data)).namelist()
    assert names == ["headshot-navy-shirt-2.png"]
    # Bad input, a missing token, another person: refused with nothing changed.
    assert bea.client.post(mark, data={"favourite": "yes", "csrf_token": bea.csrf}).status_code == 422
    assert bea.client.post(mark, data={"favourite": "0"}).status_code == 400
    carl = sign_in(app, intake_settings, demo.employees[1])
    assert carl.client.post(mark, data={"favourite": "0", "csrf_token": carl.csrf}).status_code == 404
    with db.session(org_id=demo.org_id) as s:
        assert [s.get(Headshot, i).favourite for i in ids] == [False, True, False]


def test_a_square_crop_for_profile_pictures(
    app: Flask, intake_settings: Settings, demo: DemoData, db, blobs
) -> None:
    bea = sign_in(app, intake_settings, demo.employees[0])
    headshots(db, blobs, demo.org_id, bea.session_id, [None])
    (url,) = SQUARE.findall(bea.client.get(f"/sessions/{bea.session_id}/results").get_data(as_text=True))
    response = bea.client.get(url + "?download=1")
    assert (
        response.headers["Content-Disposition"] == 'attachment; filename="headshot-navy-shirt-1-square.png"'
    )
    assert Image.open(io.BytesIO(response.data)).size == (400, 400)


def test_the_studio_engine_says_it_keeps_the_clothing(
    intake_settings: Settings, demo: DemoData, db, blobs
) -> None:
    for engine, shown in (("studio", True), ("diffusion", False)):
        app = create_app(intake_settings.replace(ENGINE=engine), db=db, blobs=blobs, checks={})
        bea = sign_in(app, intake_settings, demo.employees[0])
        if engine == "studio":
            headshots(db, blobs, demo.org_id, bea.session_id, [None])
        html = bea.client.get(f"/sessions/{bea.session_id}/results").get_data(as_text=True)
        assert ("The studio engine keeps the clothing from your photos" in html) is shown


def test_waiting_page_thumbnails_go_through_signed_links(
    app: Flask, intake_settings: Settings, demo: DemoData, db, blobs
) -> None:
    bea = sign_in(app, intake_settings, demo.employees[0])
    ids = headshots(db, blobs, demo.org_id, bea.session_id, [None, None])
    with db.uow(org_id=demo.org_id) as uow:  # still generating; the worker made a thumbnail for one
        hs = uow.session.get(HeadshotSession, bea.session_id)
        shot = uow.session.get(Headshot, ids[1])
        assert hs is not None and shot is not None
        hs.state = S.GENERATING
        shot.thumb_key = blobs.put(b"\xff\xd8 worker thumbnail", kind="thumbs", ext="jpg")
        uow.commit()
    html = bea.client.get(f"/sessions/{bea.session_id}/waiting").get_data(as_text=True)
    for hid in ids:
        assert f'/sessions/{bea.session_id}/headshots/{hid}/thumb"' in html
    first = bea.client.get(f"/sessions/{bea.session_id}/headshots/{ids[0]}/thumb")
    assert first.status_code == 302 and first.headers["Location"].startswith("/download/")
    assert max(Image.open(io.BytesIO(bea.client.get(first.headers["Location"]).data)).size) <= 320
    second = bea.client.get(f"/sessions/{bea.session_id}/headshots/{ids[1]}/thumb")
    assert bea.client.get(second.headers["Location"]).data == b"\xff\xd8 worker thumbnail"
    carl = sign_in(app, intake_settings, demo.employees[1])
    assert carl.client.get(f"/sessions/{bea.session_id}/headshots/{ids[0]}/thumb").status_code == 404
    assert carl.client.get(first.headers["Location"]).status_code == 404


def test_waiting_and_results_pages_need_no_inline_script_or_style(
    app: Flask, intake_settings: Settings, demo: DemoData, db, blobs
) -> None:
    bea = sign_in(app, intake_settings, demo.employees[0])
    headshots(db, blobs, demo.org_id, bea.session_id, [0.8])
    results = bea.client.get(f"/sessions/{bea.session_id}/results").get_data(as_text=True)
    with db.uow(org_id=demo.org_id) as uow:
        hs = uow.session.get(HeadshotSession, bea.session_id)
        assert hs is not None
        hs.state = S.GENERATING
        uow.commit()
    waiting = bea.client.get(f"/sessions/{bea.session_id}/waiting").get_data(as_text=True)
    for html in (results, waiting):
        body = main_of(html)
        assert " style=" not in body and "<script>" not in body and " on" + "click=" not in body
    scripts = re.findall(r"<script[^>]*>", waiting[waiting.index("</main>") :])
    assert scripts and all(" src=" in tag for tag in scripts)
    assert 'data-token="' in waiting and 'data-gateway-path="/gateway"' in waiting
