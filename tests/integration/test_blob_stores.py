"""One blob-store suite, two backends: the local folder (embedded) and an S3-compatible server
(distributed) — moto's standalone server, started here on a free loopback port. Then intake's
results on that server: the owner is sent to a presigned, expiring store URL instead of the app
streaming the bytes."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from libs.settings import Settings
from libs.storage import BlobError, BlobNotFound, BlobStore, LocalBlobStore, make_blob_store

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_settings(tmp_path: Path, endpoint: str, bucket: str) -> Settings:
    return Settings(
        VAR_DIR=str(tmp_path / "var"),
        BLOB_URL=f"s3://{bucket}/headshots",
        S3_ENDPOINT_URL=endpoint,
        S3_ACCESS_KEY_ID="test",
        S3_SECRET_ACCESS_KEY="test",
    )


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return make_blob_store(Settings(VAR_DIR=str(tmp_path / "var")))
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = f"blobs-{request.node.name[-20:].lower().replace('[', '-').replace(']', '')}"
    settings = s3_settings(tmp_path, endpoint, bucket.replace("_", "-")[:60])
    blobs = make_blob_store(settings)
    blobs.client.create_bucket(Bucket=blobs.bucket)  # type: ignore[attr-defined]
    return blobs


def test_put_get_size_delete_round_trip(store: BlobStore) -> None:
    key = store.put(b"\xff\xd8 a photo", kind="photos", ext="jpg")
    assert key.startswith("photos/") and key.endswith(".jpg")
    assert store.get(key) == b"\xff\xd8 a photo"
    assert store.size(key) == 10
    assert store.exists(key)
    assert store.delete(key) is True
    assert not store.exists(key)
    assert store.delete(key) is False
    with pytest.raises(BlobNotFound):
        store.get(key)
    with pytest.raises(BlobNotFound):
        store.size(key)


def test_keys_are_generated_and_any_other_key_is_refused(store: BlobStore) -> None:
    for bad in ("../etc/passwd", "photos/2026/01/x.jpg", "/abs/key", ""):
        with pytest.raises(BlobError):
            store.get(bad)
    with pytest.raises(BlobError):
        store.put(b"x", kind="../up", ext="jpg")
    with pytest.raises(BlobError):
        store.put(b"x", kind="photos", ext="j/pg")
    first, second = (store.put(b"same", kind="photos", ext="jpg") for _ in range(2))
    assert first != second  # names are never reused, even for the same bytes


def test_a_derived_key_is_rewritten_in_place(store: BlobStore) -> None:
    from datetime import UTC, datetime

    from libs.storage import derived_key

    key = derived_key("prepared", "jpg", source="photo-1/prepared", at=datetime(2026, 11, 1, tzinfo=UTC))
    assert store.put_at(key, b"first") == key
    assert store.put_at(key, b"second run") == key
    assert store.get(key) == b"second run"


def test_a_large_original_goes_up_in_parts_and_comes_back_whole(store: BlobStore) -> None:
    data = bytes(range(256)) * (20 * 1024 * 1024 // 256 + 7)  # a little over 20 MB: 3 parts on S3
    key = store.put(data, kind="originals", ext="jpg")
    assert store.size(key) == len(data)
    assert store.get(key) == data


def test_only_a_store_with_urls_of_its_own_hands_one_out(store: BlobStore) -> None:
    key = store.put(b"headshot", kind="headshots", ext="jpg")
    url = store.url_for_download(key, 60)
    if isinstance(store, LocalBlobStore):
        assert url is None  # the app streams the file itself
    else:
        assert url is not None and fetch(url) == (200, b"headshot")
    with pytest.raises(BlobError):
        store.url_for_download("../etc/passwd", 60)  # generated keys only, as everywhere


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as answer:
            if headers is not None:
                headers.clear()
                headers.update(answer.headers.items())
            return answer.status, answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, b""


def test_s3_objects_live_under_the_prefix_and_presigned_urls_expire(tmp_path: Path, s3_endpoint: str) -> None:
    from urllib.parse import parse_qs, urlsplit

    blobs = make_blob_store(s3_settings(tmp_path, s3_endpoint, "prefix-check"))
    blobs.client.create_bucket(Bucket="prefix-check")  # type: ignore[attr-defined]
    key = blobs.put(b"headshot", kind="headshots", ext="jpg")
    listed = blobs.client.list_objects_v2(Bucket="prefix-check")["Contents"]  # type: ignore[attr-defined]
    assert [o["Key"] for o in listed] == [f"headshots/{key}"]
    url = blobs.url_for_download(key, 60, disposition='attachment; filename="headshot-navy-suit-1.jpg"')
    assert url is not None and url.startswith(f"{s3_endpoint}/prefix-check/headshots/{key}?")
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["60"] and query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    headers: dict[str, str] = {}
    assert fetch(url, headers) == (200, b"headshot")
    assert headers["Content-Disposition"] == 'attachment; filename="headshot-navy-suit-1.jpg"'


def test_a_bad_blob_url_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BlobError, match="s3://bucket/prefix"):
        make_blob_store(Settings(VAR_DIR=str(tmp_path), BLOB_URL="http://not-s3/"))
    with pytest.raises(BlobError, match="too short"):
        make_blob_store(Settings(VAR_DIR=str(tmp_path), BLOB_URL="s3://ab/x"))
    assert isinstance(make_blob_store(Settings(VAR_DIR=str(tmp_path))), LocalBlobStore)


# --- intake's results on the S3 store ---------------------------------------------------------------------
@contextmanager
def intake_on_s3(tmp_path: Path, s3_endpoint: str, pg_url: str, bucket: str) -> Iterator[tuple[Any, ...]]:
    """Intake on a fresh bucket of the S3 server, with a signed-in person whose session has four
    headshots: (settings, blobs, db, demo, app, the person, the headshots' bytes)."""
    from libs.db import Database
    from libs.db.demo import seed_demo
    from services.intake.app import create_app
    from tests.support.intake import complete_with_headshots, intake_settings_for, sign_in

    settings = intake_settings_for(
        tmp_path,
        pg_url,
        BLOB_URL=f"s3://{bucket}/headshots",
        S3_ENDPOINT_URL=s3_endpoint,
        S3_ACCESS_KEY_ID="test",
        S3_SECRET_ACCESS_KEY="test",
    )
    blobs = make_blob_store(settings)
    blobs.client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    db = Database(settings.database_url)
    try:
        demo = seed_demo(db)
        app = create_app(settings, db=db, blobs=blobs, checks={})
        bea = sign_in(app, settings, demo.employees[0])
        images = complete_with_headshots(db, blobs, demo.org_id, bea.session_id)
        yield settings, blobs, db, demo, app, bea, images
    finally:
        db.dispose()


def test_intake_sends_the_owner_to_a_presigned_store_url(
    tmp_path: Path, s3_endpoint: str, pg_url: str
) -> None:
    import re

    from libs.db import Headshot
    from services.intake.views import STORE_URL_SECONDS
    from tests.support.intake import png_bytes, sign_in

    with intake_on_s3(tmp_path, s3_endpoint, pg_url, "intake-results") as run:
        settings, blobs, db, demo, app, bea, images = run
        page = bea.client.get(f"/sessions/{bea.session_id}/results")
        # The pages may show images from the store's origin (and only from there besides their own).
        assert f"img-src 'self' data: blob: {s3_endpoint};" in page.headers["Content-Security-Policy"]
        urls = re.findall(r'<a class="full" href="(/download/[^"?]+)"', page.get_data(as_text=True))
        assert len(urls) == 4

        # Full size: a redirect to the store, signed for a minute; the bytes never pass the app.
        for url, image in zip(urls, images, strict=True):
            answer = bea.client.get(url)
            assert answer.status_code == 302
            location = answer.headers["Location"]
            assert location.startswith(f"{s3_endpoint}/intake-results/headshots/headshots/")
            assert f"X-Amz-Expires={STORE_URL_SECONDS}&" in location
            headers: dict[str, str] = {}
            assert fetch(location, headers) == (200, image)
            assert headers["Content-Disposition"].startswith('inline; filename="headshot-')
        attachment = bea.client.get(urls[0] + "?download=1").headers["Location"]
        headers = {}
        fetch(attachment, headers)
        assert headers["Content-Disposition"] == 'attachment; filename="headshot-navy-shirt-1.png"'

        # The owner check comes first: anyone else gets no store URL at all.
        for intruder in (demo.employees[1], demo.other_employee):
            other = sign_in(app, settings, intruder).client.get(urls[0])
            assert other.status_code == 404 and "Location" not in other.headers
        signed_out = app.test_client().get(urls[0])
        assert signed_out.status_code == 401 and "Location" not in signed_out.headers

        # The worker's stored thumbnail goes the same way.
        thumb = png_bytes(np.full((32, 48, 3), 200, dtype=np.uint8))
        with db.uow(org_id=demo.org_id) as uow:
            shot = uow.session.scalars(select(Headshot).order_by(Headshot.position)).first()
            assert shot is not None
            shot.thumb_key = blobs.put(thumb, kind="thumbs", ext="png")
            shot_id, full_key = shot.id, shot.blob_key
            uow.commit()
        hop = bea.client.get(f"/sessions/{bea.session_id}/headshots/{shot_id}/thumb")
        assert hop.status_code == 302 and hop.headers["Location"].startswith("/download/")
        to_store = bea.client.get(hop.headers["Location"])
        assert to_store.status_code == 302 and fetch(to_store.headers["Location"]) == (200, thumb)

        # A missing object is a clear 404 from the app, not a dead link to the store.
        blobs.delete(full_key)
        gone = bea.client.get(urls[0])
        assert gone.status_code == 404 and gone.get_json() is None and "Location" not in gone.headers


def test_intake_keeps_the_zip_and_square_crops_in_the_store_and_erasure_takes_them(
    tmp_path: Path, s3_endpoint: str, pg_url: str
) -> None:
    import io
    import re
    import zipfile

    from PIL import Image

    from libs.db import Headshot, HeadshotSession
    from libs.privacy import delete_session_data, remove_files
    from services.intake import results
    from services.intake.views import STORE_URL_SECONDS
    from tests.support.intake import sign_in

    with intake_on_s3(tmp_path, s3_endpoint, pg_url, "intake-copies") as run:
        settings, blobs, db, demo, app, bea, images = run
        page = bea.client.get(f"/sessions/{bea.session_id}/results").get_data(as_text=True)
        (zip_url,) = re.findall(r'href="(/download/[^"?]+)" download>(?:(?!</a>).)*Download all', page, re.S)
        square_url = re.findall(r'href="(/download/[^"?]+)\?download=1" download>Square', page)[0]
        with db.uow(org_id=demo.org_id) as uow:
            hs = uow.session.get(HeadshotSession, bea.session_id)
            assert hs is not None
            zip_key = results.zip_key(hs, results.headshots_by_style(uow, hs))
            first = uow.session.scalars(select(Headshot).order_by(Headshot.position)).first()
            assert first is not None
            square_key = results.stored_key(first, "square")
        assert zip_key.startswith("results/") and square_key and square_key.startswith("results/")

        # The owner check comes first: nobody else gets a URL, nor makes the store build anything.
        for url in (zip_url, square_url):
            for intruder in (demo.employees[1], demo.other_employee):
                other = sign_in(app, settings, intruder).client.get(url)
                assert other.status_code == 404 and "Location" not in other.headers
            signed_out = app.test_client().get(url)
            assert signed_out.status_code == 401 and "Location" not in signed_out.headers
        assert not blobs.exists(zip_key) and not blobs.exists(square_key)

        # The ZIP is made once, kept in the store, and the owner is sent there to download it.
        answer = bea.client.get(zip_url)
        assert answer.status_code == 302
        location = answer.headers["Location"]
        assert location.startswith(f"{s3_endpoint}/intake-copies/headshots/results/")
        assert f"X-Amz-Expires={STORE_URL_SECONDS}&" in location
        headers: dict[str, str] = {}
        status, body = fetch(location, headers)
        assert status == 200 and headers["Content-Disposition"] == 'attachment; filename="headshots.zip"'
        with zipfile.ZipFile(io.BytesIO(body)) as zf:
            assert zf.namelist()[0] == "headshot-navy-shirt-1.png"
            assert [zf.read(name) for name in zf.namelist()] == images
        # A later request reuses the stored ZIP (it would not be these bytes if made again).
        blobs.put_at(zip_key, b"the stored zip")
        assert fetch(bea.client.get(zip_url).headers["Location"]) == (200, b"the stored zip")

        # The square crop too: made once from the full image, kept, then handed out by the store.
        answer = bea.client.get(square_url + "?download=1")
        assert (
            answer.status_code == 302 and f"X-Amz-Expires={STORE_URL_SECONDS}&" in answer.headers["Location"]
        )
        headers = {}
        status, body = fetch(answer.headers["Location"], headers)
        assert headers["Content-Disposition"] == 'attachment; filename="headshot-navy-shirt-1-square.png"'
        with Image.open(io.BytesIO(body)) as square:
            assert (status, square.format, square.size) == (200, "PNG", (64, 64))
        blobs.put_at(square_key, b"the stored square")
        assert fetch(bea.client.get(square_url).headers["Location"]) == (200, b"the stored square")

        # The favourites' ZIP goes through the store too, made again on each download (picks change).
        def favourites_zip() -> list[bytes]:
            page = bea.client.get(f"/sessions/{bea.session_id}/results").get_data(as_text=True)
            (url,) = re.findall(r'href="(/download/[^"?]+)" download>★ Download your favourites', page)
            answer = bea.client.get(url)
            assert (
                answer.status_code == 302
                and f"X-Amz-Expires={STORE_URL_SECONDS}&" in answer.headers["Location"]
            )
            headers: dict[str, str] = {}
            status, body = fetch(answer.headers["Location"], headers)
            assert status == 200 and headers["Content-Disposition"].endswith(
                'filename="favourite-headshots.zip"'
            )
            with zipfile.ZipFile(io.BytesIO(body)) as zf:
                return [zf.read(name) for name in zf.namelist()]

        def pick(position: int, favourite: bool) -> None:
            with db.session(all_orgs=True) as s:
                shot = s.scalars(select(Headshot).where(Headshot.position == position)).one()
                shot.favourite = favourite
                s.commit()

        pick(0, True)
        assert favourites_zip() == [images[0]]
        pick(1, True)
        pick(0, False)
        assert favourites_zip() == [images[1]]  # not the first download's copy
        with db.uow(org_id=demo.org_id) as uow:
            hs = uow.session.get(HeadshotSession, bea.session_id)
            assert hs is not None
            favourites_key = results.favourites_zip_key(hs)
        assert blobs.exists(favourites_key)

        # Deleting the session's data takes the kept copies with the headshots.
        with db.uow(org_id=demo.org_id) as uow:
            hs = uow.session.get(HeadshotSession, bea.session_id)
            assert hs is not None
            erasure = delete_session_data(uow, hs, reason="request", actor=hs.user_id)
            uow.commit()
        assert {zip_key, square_key, favourites_key} <= set(erasure.blob_keys)
        remove_files(erasure, blobs, settings.person_model_dir)
        assert not any(blobs.exists(k) for k in (zip_key, square_key, favourites_key))
