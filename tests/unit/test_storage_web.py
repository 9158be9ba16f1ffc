"""Blob store keys and the web pieces every service shares."""

from __future__ import annotations

import pytest
from flask import jsonify, session

from libs.db import Database, User
from libs.settings import Settings
from libs.storage import BlobError, BlobNotFound, LocalBlobStore, is_valid_key
from libs.web import ApiError, TokenInvalid, create_base_app, login, login_required, read_invite, sign, unsign
from libs.web.auth import invite_url


def test_blob_keys_are_generated_and_nothing_else_reaches_the_disk(tmp_path):
    store = LocalBlobStore(tmp_path)
    key = store.put(b"jpeg bytes", kind="photos", ext="jpg")
    assert is_valid_key(key) and key.startswith("photos/")
    assert store.get(key) == b"jpeg bytes" and store.size(key) == 10 and store.exists(key)
    for bad in ["../../etc/passwd", "/etc/passwd", "photos/2026/11/x.jpg", key + "/..", "photos/../" + key]:
        with pytest.raises(BlobError):
            store.get(bad)
    with pytest.raises(BlobError):
        store.put(b"x", kind="../up", ext="jpg")
    assert store.delete(key) and not store.delete(key)
    with pytest.raises(BlobNotFound):
        store.get(key)
    assert not list(tmp_path.rglob(".tmp-*"))


@pytest.fixture
def app(settings, sqlite_url):
    settings = settings.replace(DATABASE_URL=sqlite_url)
    app = create_base_app(__name__, "test", settings)

    @app.post("/api/v1/boom")
    def boom():
        raise ApiError(
            422, "validation_failed", "Please fix the marked fields.", {"full_name": ["Required."]}
        )

    @app.get("/crash")
    def crash():
        raise RuntimeError("secret internals")

    @app.post("/form")
    def form():
        return jsonify(ok=True)

    @app.get("/as/<user_id>")
    def sign_in(user_id):
        with app.extensions["headshots.db"].session(all_orgs=True) as s:
            login(s.get(User, user_id))
        return jsonify(csrf=session.setdefault("csrf", "tok"))

    @app.get("/admin-only")
    @login_required()
    def admin_only():
        return jsonify(ok=True)

    return app


def test_one_json_error_shape_and_no_leaks(app):
    client = app.test_client()
    r = client.post("/api/v1/boom")
    assert r.status_code == 422
    assert r.json == {
        "error": {
            "status": 422,
            "code": "validation_failed",
            "message": "Please fix the marked fields.",
            "fields": {"full_name": ["Required."]},
        }
    }
    r = client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.json["error"]["code"] == "not_found"
    r = client.get("/crash")
    assert r.status_code == 500 and b"secret internals" not in r.data
    r = client.get("/crash", headers={"Accept": "application/json"})
    assert r.json["error"]["code"] == "internal_error"


def test_health_ready_and_metrics(app):
    client = app.test_client()
    assert client.get("/healthz").json == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json["checks"] == {"database": "ok"}
    assert b"http_requests_total" in client.get("/metrics").data


def test_readyz_names_what_is_down(settings):
    def broker_down():
        raise ConnectionError("broker unreachable at amqp://127.0.0.1:1")

    app = create_base_app(
        __name__,
        "test",
        settings.replace(DATABASE_URL="sqlite:////nonexistent/dir/x.db"),
        checks={"broker": broker_down},
    )
    r = app.test_client().get("/readyz")
    assert r.status_code == 503
    assert r.json["checks"]["broker"].startswith("failed: broker unreachable")
    assert r.json["checks"]["database"].startswith("failed")


def test_csrf_is_required_once_signed_in(app):
    db: Database = app.extensions["headshots.db"]
    with db.uow(all_orgs=True) as uow:
        user = User(org_id=None, email="s@x", role="support")
        uow.session.add(user)
        uow.commit()
    client = app.test_client()
    token = client.get(f"/as/{user.id}").json["csrf"]
    r = client.post("/form", headers={"Accept": "application/json"})
    assert r.status_code == 400 and r.json["error"]["code"] == "csrf_failed"
    r = client.post("/form")  # a browser's form post gets the same error as a page
    assert r.status_code == 400 and b"This form has expired" in r.data
    assert client.post("/form", headers={"X-CSRF-Token": token}).status_code == 200
    assert client.post("/form", data={"csrf_token": token}).status_code == 200
    cookie = client.get_cookie("headshots_session")
    assert cookie.http_only and cookie.same_site == "Lax"


def test_signed_out_people_are_asked_to_sign_in(app):
    r = app.test_client().get("/admin-only", headers={"Accept": "application/json"})
    assert r.status_code == 401


def test_signed_tokens_expire_and_cannot_be_forged():
    s = Settings(SECRET_KEY="k1", INVITE_TTL_SECONDS=60)
    token = sign(s, "invite", {"user_id": "u1"})
    assert unsign(s, "invite", token, max_age=60) == {"user_id": "u1"}
    with pytest.raises(TokenInvalid) as exc:
        unsign(s.replace(SECRET_KEY="k2"), "invite", token, max_age=60)
    assert not exc.value.expired
    with pytest.raises(TokenInvalid):
        unsign(s, "result", token, max_age=60)  # a token for one purpose is useless for another
    with pytest.raises(TokenInvalid) as exc:
        unsign(s, "invite", token, max_age=-1)
    assert exc.value.expired
    user = User(id="u9", org_id="o1", email="x@y")
    url = invite_url(s, user)
    assert url.startswith("http://127.0.0.1:8000/invite/")
    assert read_invite(s, url.rsplit("/", 1)[1]) == {"user_id": "u9", "org_id": "o1"}


def test_every_app_gets_the_shared_blob_store(settings, tmp_path):
    from libs.web import get_blobs

    store = LocalBlobStore(tmp_path / "shared")
    app = create_base_app(__name__, "test", settings, blobs=store)
    with app.app_context():
        assert get_blobs() is store
    default = create_base_app(__name__, "test", settings)
    with default.app_context():
        assert get_blobs().root == settings.blob_dir.resolve()
