"""One blob-store suite, two backends: the local folder (embedded) and an S3-compatible server
(distributed) — moto's standalone server, started here on a free loopback port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

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


def test_s3_objects_live_under_the_prefix_and_presigned_urls_expire(tmp_path: Path, s3_endpoint: str) -> None:
    import urllib.request

    blobs = make_blob_store(s3_settings(tmp_path, s3_endpoint, "prefix-check"))
    blobs.client.create_bucket(Bucket="prefix-check")  # type: ignore[attr-defined]
    key = blobs.put(b"headshot", kind="headshots", ext="jpg")
    listed = blobs.client.list_objects_v2(Bucket="prefix-check")["Contents"]  # type: ignore[attr-defined]
    assert [o["Key"] for o in listed] == [f"headshots/{key}"]
    url = blobs.presigned_url(key, 60)  # type: ignore[attr-defined]
    assert "Expires=" in url or "X-Amz-Expires=60" in url
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.read() == b"headshot"


def test_a_bad_blob_url_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BlobError, match="s3://bucket/prefix"):
        make_blob_store(Settings(VAR_DIR=str(tmp_path), BLOB_URL="http://not-s3/"))
    with pytest.raises(BlobError, match="too short"):
        make_blob_store(Settings(VAR_DIR=str(tmp_path), BLOB_URL="s3://ab/x"))
    assert isinstance(make_blob_store(Settings(VAR_DIR=str(tmp_path))), LocalBlobStore)
