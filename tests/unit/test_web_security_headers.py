"""Every web app the launcher finds (and the platform app that answers when no service owns '/')
sends the strict Content-Security-Policy and the anti-framing headers, on pages, JSON and errors
alike, and refuses a request carrying a NUL character before any of its own checks or handlers;
new services are covered by being found, not by being listed here."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from libs.settings import Settings
from libs.storage import LocalBlobStore
from libs.web.security import blob_origin, content_security_policy
from services import launcher

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'; object-src 'none'"
)


def _platform(settings: Settings, **_: object) -> Flask:
    return launcher.platform_app(launcher.Platform(settings), {})


APPS: dict[str, Callable[..., Flask]] = {**launcher.web_services(), "platform": _platform}


@pytest.fixture(params=sorted(APPS))
def app(request: pytest.FixtureRequest, settings: Settings, sqlite_url: str) -> Flask:
    settings = settings.replace(DATABASE_URL=sqlite_url)
    return APPS[request.param](settings, blobs=LocalBlobStore(settings.blob_dir), checks={})


def test_the_apps_found_include_intake():
    assert "intake" in APPS  # the discovery itself works, so the list below is not empty by mistake


@pytest.mark.parametrize("path", ["/", "/healthz", "/no-such-page", "/api/v1/no-such-thing"])
def test_every_answer_carries_the_security_headers(app, path):
    response = app.test_client().get(path, headers={"Accept": "text/html"})
    assert response.headers["Content-Security-Policy"] == POLICY
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # same-origin by default; the mail pages send none at all (their links sign people in)
    assert response.headers["Referrer-Policy"] in ("same-origin", "no-referrer")


def test_the_error_page_works_under_the_policy(app):
    client = app.test_client()
    response = client.get("/no-such-page", headers={"Accept": "text/html"})
    assert response.status_code in (401, 404)  # apps for signed-in staff only answer "sign in" first
    html = response.get_data(as_text=True)
    assert not INLINE.search(html), html
    css = re.search(r'<link rel="stylesheet" href="([^"]+)"', html)
    assert css, html
    sheet = client.get(css.group(1))
    assert sheet.status_code == 200 and sheet.mimetype == "text/css"


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", "/api/v1/sessions/a%00b/status", {}),  # an id in the path
        ("GET", "/?q=x%00", {}),  # a search
        ("POST", "/sign-out", {"data": {"reason": "x\x00y"}}),  # a form field (before the CSRF check)
        ("POST", "/api/v1/x", {"json": {"styles": [{"a": "\x00"}]}}),  # deep in a JSON body
        ("POST", "/api/v1/x", {"json": {"na\x00me": 1}}),  # a JSON key
        # 600 levels down (the check walks the body without recursing)
        (
            "POST",
            "/api/v1/x",
            {"data": "[" * 600 + '"\\u0000"' + "]" * 600, "content_type": "application/json"},
        ),
    ],
)
def test_a_nul_character_anywhere_is_refused_with_a_clear_400(app, method, path, body):
    # PostgreSQL cannot store a NUL in text: passed on, it failed the query with a 500.
    response = app.test_client().open(path, method=method, headers={"Accept": "application/json"}, **body)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["error"]["code"] == "nul_character"
    assert "NUL" in response.json["error"]["message"]


def test_a_json_body_nested_too_deeply_to_read_is_a_400_not_a_crash(app):
    deep = "[" * 100_000 + "]" * 100_000  # Python's JSON reader gives up (RecursionError)
    response = app.test_client().post("/api/v1/x", data=deep, content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"]["message"] == "The JSON body is nested too deeply to read."


def test_text_without_a_nul_goes_on_to_the_app(app):
    assert app.test_client().get("/healthz?q=caf%C3%A9%01").status_code == 200


def test_images_may_come_from_the_blob_stores_origin():
    policy = content_security_policy("https://blobs.example.com")
    assert "img-src 'self' data: blob: https://blobs.example.com;" in policy
    assert "script-src 'self';" in policy  # only images widen


def test_the_blob_stores_public_url_gives_its_origin():
    class SignedUrlStore(LocalBlobStore):
        public_url = "https://blobs.example.com:9000/headshots"

    assert blob_origin(SignedUrlStore("unused")) == "https://blobs.example.com:9000"
    assert blob_origin(LocalBlobStore("unused")) is None


# What the policy refuses in markup: inline scripts and styles, style attributes, event handlers.
INLINE = re.compile(r"<script(?![^>]*\ssrc=)[^>]*>|<style|\sstyle=|\son[a-z]+=|javascript:", re.IGNORECASE)


def test_no_template_of_any_service_has_inline_script_or_style():
    # E-mails are not pages: mail clients need their <style>, and the mail page shows them in a
    # sandboxed frame under a policy of its own (services/notification/views.py).
    templates = sorted(
        p
        for p in Path(launcher.__file__).parent.glob("*/templates/**/*.html")
        if "email" not in p.parent.name
    )
    assert templates, "no templates found"
    offenders = [
        f"{path.relative_to(path.parents[2])}:{n}: {line.strip()}"
        for path in templates
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if INLINE.search(line)
    ]
    assert not offenders, "\n".join(offenders)
