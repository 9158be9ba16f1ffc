"""The results page: headshots grouped by style, signed expiring downloads, owner only."""

from __future__ import annotations

import io
import re
import zipfile

import itsdangerous.timed
from flask import Flask
from PIL import Image

from libs.contracts import SessionState
from libs.db.demo import DemoData
from tests.support.intake import complete_with_headshots, error_of, sign_in

S = SessionState
DOWNLOAD = re.compile(r'<a class="full" href="(/download/[^"?]+)"')  # each tile opens the full image
THUMB = re.compile(r'<img src="(/download/[^"?]+)"')
ZIP = re.compile(r'href="(/download/[^"?]+)" download>')


def test_results_show_an_empty_state_until_there_are_headshots(app: Flask, intake_settings, demo: DemoData):
    bea = sign_in(app, intake_settings, demo.employees[0])
    html = bea.client.get(f"/sessions/{bea.session_id}/results").get_data(as_text=True)
    assert "Your headshots aren't ready yet" in html
    assert "/download/" not in html


def test_results_group_headshots_by_style_with_signed_downloads(
    app, intake_settings, demo: DemoData, db, blobs
):
    bea = sign_in(app, intake_settings, demo.employees[0])
    images = complete_with_headshots(db, blobs, demo.org_id, bea.session_id)
    assert bea.client.get("/").headers["Location"] == f"/sessions/{bea.session_id}/results"
    html = bea.client.get(f"/sessions/{bea.session_id}/results").get_data(as_text=True)
    assert html.index("Deep navy · Business shirt") < html.index("Studio grey · Dark suit")
    urls = DOWNLOAD.findall(html)
    assert len(urls) == 4
    assert [bea.client.get(u).data for u in urls] == images
    # The tiles show thumbnails (JPEG, at most 320 pixels a side), not the full PNGs they link to.
    thumbs = THUMB.findall(html)
    assert len(thumbs) == 4 and set(thumbs).isdisjoint(urls)
    for thumb in thumbs:
        data = bea.client.get(thumb).data
        assert data not in images
        with Image.open(io.BytesIO(data)) as tile:
            assert tile.format == "JPEG" and max(tile.size) <= 320
    assert bea.client.get(urls[0] + "?download=1").headers["Content-Disposition"].startswith("attachment;")
    (zip_url,) = ZIP.findall(html)
    archive = zipfile.ZipFile(io.BytesIO(bea.client.get(zip_url).data))
    assert sorted(archive.namelist()) == [
        "headshot-navy-shirt-1.png",
        "headshot-navy-shirt-2.png",
        "headshot-studio-grey-suit-1.png",
        "headshot-studio-grey-suit-2.png",
    ]
    assert not (blobs.root / "results").exists()  # the local folder streams: no copy is kept


def test_a_zip_whose_headshot_file_is_gone_is_a_clear_404(app, intake_settings, demo: DemoData, db, blobs):
    from libs.db import Headshot

    bea = sign_in(app, intake_settings, demo.employees[0])
    complete_with_headshots(db, blobs, demo.org_id, bea.session_id)
    html = bea.client.get(f"/sessions/{bea.session_id}/results").get_data(as_text=True)
    (zip_url,) = ZIP.findall(html)
    with db.session(all_orgs=True) as s:
        key = s.query(Headshot).filter_by(session_id=bea.session_id).first().blob_key
    assert blobs.delete(key)
    gone = bea.client.get(zip_url)
    assert gone.status_code == 404, gone.data[:200]


def test_the_kept_zip_and_square_crop_have_keys_derived_from_the_rows() -> None:
    from datetime import UTC, datetime

    from libs.storage import is_valid_key, results_zip_key, square_key

    at = datetime(2026, 11, 3, tzinfo=UTC)
    keys = ["headshots/2026/11/" + "a" * 32 + ".png", "headshots/2026/11/" + "b" * 32 + ".jpg"]
    zip_key = results_zip_key("session-1", keys, at=at)
    assert zip_key.startswith("results/2026/11/") and zip_key.endswith(".zip") and is_valid_key(zip_key)
    assert results_zip_key("session-1", keys[::-1], at=at) == zip_key  # any order: the same set
    assert results_zip_key("session-1", keys[:1], at=at) != zip_key  # another set: another ZIP
    assert results_zip_key("session-2", keys, at=at) != zip_key
    assert square_key("shot-1", keys[0], at=at).endswith(".png")
    assert square_key("shot-1", keys[1], at=at).endswith(".jpg")
    assert square_key("shot-1", keys[1], at=at) != square_key("shot-2", keys[1], at=at)


def test_downloads_are_for_their_owner_only(app, intake_settings, demo: DemoData, db, blobs):
    bea = sign_in(app, intake_settings, demo.employees[0])
    complete_with_headshots(db, blobs, demo.org_id, bea.session_id)
    url = DOWNLOAD.findall(bea.client.get(f"/sessions/{bea.session_id}/results").get_data(as_text=True))[0]
    for intruder in (demo.employees[1], demo.other_employee):
        other = sign_in(app, intake_settings, intruder)
        assert other.client.get(url).status_code == 404
        assert other.client.get(f"/sessions/{bea.session_id}/results").status_code == 404
    assert app.test_client().get(url).status_code == 401
    tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    assert bea.client.get(tampered).status_code == 404


def test_download_links_expire(app, intake_settings, demo: DemoData, db, blobs, monkeypatch):
    bea = sign_in(app, intake_settings, demo.employees[0])
    complete_with_headshots(db, blobs, demo.org_id, bea.session_id)
    url = DOWNLOAD.findall(bea.client.get(f"/sessions/{bea.session_id}/results").get_data(as_text=True))[0]
    assert bea.client.get(url).status_code == 200
    # An hour and a minute later (the sign-in cookie lives for days, the link for RESULT_URL_TTL_SECONDS):
    real = itsdangerous.timed.TimestampSigner.get_timestamp
    later = intake_settings.RESULT_URL_TTL_SECONDS + 60
    monkeypatch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: real(self) + later)
    response = bea.client.get(url, headers={"Accept": "application/json"})
    assert response.status_code == 410
    assert error_of(response)["code"] == "link_expired"
