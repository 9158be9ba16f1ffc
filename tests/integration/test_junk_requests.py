"""Junk aimed at every route of every web app, as an employee, an org admin (cookie and API key)
and support staff, on both backends: no answer is a server error.

What a careless or hostile client sends: ids that are no id (empty, 5,000 characters, a NUL,
bidi marks, ``../..``, 10^20), numbers that are no number ("1e309", "nan"), JSON of the wrong
shape (lists of objects where text is expected, nulls, deep nesting), bodies that are no JSON or
form at all, stray files, a missing CSRF token, and real ids of the signed-in people mixed in so
the handlers are reached. PostgreSQL refuses what SQLite stores (a NUL in text, an integer beyond
64 bits), hence both backends. The walk is the same every run (one seed, the routes in their
url_map order): a failure names the requests that got a 5xx and can be replayed.

Routes that end a sign-in or delete what later requests need (sign-out, deactivate, delete) get
only junk ids, never a real one, at the end; their own tests cover what they do with real ones.
"""

from __future__ import annotations

import io
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from flask import Flask
from werkzeug.test import Client

from libs.db.demo import DemoData, seed_demo
from libs.settings import Settings
from libs.web import invite_url
from services import WEB_MOUNTS, launcher
from tests.support.intake import astronaut_png

SEED = 20261130
RANDOM_REQUESTS = 1000
SKIPPED = re.compile(r"static|/_web/|sign-out")
DESTRUCTIVE = re.compile(r"deactivate|delete")
JUNK = (
    "",
    " ",
    "0",
    "-1",
    "1e309",
    "nan",
    "true",
    "x" * 300,
    "x" * 5000,
    "ü\u202e\x00<b>",
    "../../etc/passwd",
    str(10**20),
    "2026-13-45",
    "%s",
    "navy:suit",
    "portrait",
    "female",
    "failed",
    "on",
)
WRONG_TYPES = ([{}], [[["deep"]]], {"a": 1}, None, 10**20, 1e308, True, "x\x00", "x" * 5000, [""])
FIELDS = [
    "csrf_token",
    "org",
    "confirm",
    "status",
    "reason",
    "q",
    "message_id",
    "allowed_styles",
    "webhook_url",
    "target",
    "styles",
    "state",
    "session_ids",
    "session",
    "retention_days",
    "renewal",
    "photos",
    "older_than_hours",
    "newer_than_hours",
    "name",
    "manual_review",
    "kind",
    "glasses",
    "gender",
    "full_name",
    "format",
    "flagged",
    "favourite",
    "eye_color",
    "emails",
    "email",
    "best_photos",
    "agree_terms",
    "actor",
    "action",
    "page",
    "role",
    "decision",
    "rejection_reason",
]


@dataclass
class Caller:
    client: Client
    csrf: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Product:
    app: Any
    routes: list[tuple[str, str, list[str], list[str]]]  # mount, rule, methods, arguments
    destructive: list[tuple[str, str, list[str], list[str]]]  # the same, given junk ids only
    callers: list[Caller]
    known: dict[str, list[str]]


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert found, page[:300]
    return found.group(1)


def _signed_in(app: Any, link: str, landing: str) -> Caller:
    client = Client(app)
    assert client.get(urlsplit(link).path).status_code == 303
    return Caller(client, _csrf(client.get(landing, follow_redirects=True).get_data(as_text=True)))


@pytest.fixture
def product(backend: Settings) -> Iterator[Product]:
    platform = launcher.Platform(backend)
    demo: DemoData = seed_demo(platform.db)
    app, _urls = launcher.build_wsgi(platform)
    flask_apps: list[tuple[str, Flask]] = [("", app.app), *app.mounts.items()]
    every = [
        (mount, rule.rule, sorted(rule.methods - {"HEAD", "OPTIONS"}), sorted(rule.arguments))
        for mount, flask_app in flask_apps
        for rule in flask_app.url_map.iter_rules()
        if not SKIPPED.search(rule.rule)
    ]
    routes = [route for route in every if not DESTRUCTIVE.search(route[1])]
    destructive = [route for route in every if DESTRUCTIVE.search(route[1]) and route[3]]
    settings = platform.settings
    employee = _signed_in(app, invite_url(settings, demo.employees[0]), "/")
    session = employee.client.get("/api/v1/sessions/current").get_json()
    photo = employee.client.post(
        f"/api/v1/sessions/{session['id']}/photos",
        data={"photo": (io.BytesIO(astronaut_png()), "me.png")},
        headers={"X-CSRF-Token": session["csrf_token"]},
    )
    assert photo.status_code == 201, photo.get_data(as_text=True)
    review, ops = WEB_MOUNTS["review"], WEB_MOUNTS["ops"]
    admin = _signed_in(app, invite_url(settings, demo.admin, f"{review}/invite/"), f"{review}/settings")
    made = admin.client.post(f"{review}/settings/api-keys", data={"name": "junk", "csrf_token": admin.csrf})
    key = re.search(r"hsk_[A-Za-z0-9_\-]+", made.get_data(as_text=True))
    assert key, made.status_code
    by_key = Caller(Client(app), "", {"Authorization": f"Bearer {key.group(0)}"})
    support = _signed_in(app, invite_url(settings, demo.support, f"{ops}/invite/"), f"{ops}/")
    known = {
        "session_id": [session["id"]],
        "photo_id": [photo.get_json()["id"]],
        "user_id": [user.id for user in demo.employees],
        "queue": ["review.session.submitted"],
        "size": ["thumb"],
        "delivery_id": ["1"],
    }
    try:
        yield Product(app, routes, destructive, [employee, admin, by_key, support], known)
    finally:
        platform.db.dispose()


def _body(rnd: random.Random, caller: Caller) -> dict[str, Any]:
    fields = {rnd.choice(FIELDS): rnd.choice(JUNK) for _ in range(rnd.randrange(6))}
    if caller.csrf and rnd.random() < 0.9:
        fields["csrf_token"] = caller.csrf
    shape = rnd.randrange(4)
    if shape == 0:
        return {"json": {name: rnd.choice(WRONG_TYPES) for name in fields}}
    if shape == 1:
        return {"data": fields}
    if shape == 2:
        kind = rnd.choice(("application/json", "application/x-www-form-urlencoded", "multipart/form-data"))
        return {"data": b"\xff\xfe{{", "content_type": kind}
    upload = rnd.choice((b"", b"\xff\xd8\xff" + bytes(rnd.randrange(256) for _ in range(200)), b"GIF89a"))
    return {"data": {**fields, rnd.choice(("photo", "file")): (io.BytesIO(upload), "x.jpg")}}


class Walk:
    """Sends requests and keeps the ones answered with a 5xx."""

    def __init__(self, product: Product) -> None:
        self.product = product
        self.failures: list[str] = []
        self.sent = 0

    def caller_for(self, mount: str) -> Caller:
        employee, admin, by_key, support = self.product.callers
        return {"": employee, WEB_MOUNTS["review"]: admin, WEB_MOUNTS["ops"]: support}.get(mount, employee)

    def path(self, mount: str, rule: str, values: dict[str, str]) -> str:
        path = mount + rule
        for name, value in values.items():
            path = re.sub(rf"<(?:[a-z]+(?:\([^)]*\))?:)?{name}>", quote(value or "x", safe=""), path)
        return path

    def known(self, name: str, rnd: random.Random) -> str:
        pool = self.product.known.get(name)
        return rnd.choice(pool) if pool else rnd.choice(JUNK)

    def send(
        self, caller: Caller, method: str, path: str, query: dict[str, Any], body: dict[str, Any]
    ) -> None:
        headers = dict(caller.headers)
        if caller.csrf:
            headers["X-CSRF-Token"] = caller.csrf
        answer = caller.client.open(path, method=method, query_string=query, headers=headers, **body)
        self.sent += 1
        if answer.status_code >= 500:
            shown = {k: v for k, v in body.items() if k != "data" or isinstance(v, bytes | dict)}
            sent = json.dumps(shown, default=repr)
            self.failures.append(
                f"{method} {path[:120]} ?{query!r:.120} {sent[:160]} -> {answer.status_code}"
            )


def test_no_junk_request_gets_a_server_error(product: Product) -> None:
    rnd = random.Random(SEED)
    walk = Walk(product)
    # 1. Every junk value in every path argument, the other arguments real, by the app's own user.
    for mount, rule, methods, arguments in product.routes:
        for name in arguments:
            for value in JUNK:
                values = {other: walk.known(other, rnd) for other in arguments} | {name: value}
                caller = walk.caller_for(mount)
                walk.send(caller, methods[0], walk.path(mount, rule, values), {}, {})
    # 2. Every write with every field at once of each wrong type, as JSON and as a form.
    for mount, rule, methods, arguments in product.routes:
        caller = walk.caller_for(mount)
        path = walk.path(mount, rule, {name: walk.known(name, rnd) for name in arguments})
        for method in (m for m in methods if m != "GET"):
            for wrong in WRONG_TYPES:
                walk.send(caller, method, path, {}, {"json": dict.fromkeys(FIELDS, wrong)})
            for value in JUNK:
                walk.send(
                    caller,
                    method,
                    path,
                    {},
                    {"data": {**dict.fromkeys(FIELDS, value), "csrf_token": caller.csrf}},
                )
    # 3. Every query field of every page and list, at each junk value.
    for mount, rule, methods, arguments in product.routes:
        if "GET" not in methods:
            continue
        caller = walk.caller_for(mount)
        path = walk.path(mount, rule, {name: walk.known(name, rnd) for name in arguments})
        for value in JUNK:
            walk.send(caller, "GET", path, dict.fromkeys(rnd.sample(FIELDS, 8), value), {})
    # 4. At random: any route, method and caller, junk mixed with real ids, in path, query and body.
    for _ in range(RANDOM_REQUESTS):
        mount, rule, methods, arguments = rnd.choice(product.routes)
        method = rnd.choice(methods)
        caller = rnd.choice(product.callers)
        values = {
            name: walk.known(name, rnd) if rnd.random() < 0.7 else rnd.choice(JUNK) for name in arguments
        }
        query = {rnd.choice(FIELDS): rnd.choice(JUNK) for _ in range(rnd.randrange(4))}
        body = _body(rnd, caller) if method != "GET" else {}
        walk.send(caller, method, walk.path(mount, rule, values), query, body)
    # 5. What deletes or deactivates, with junk in every id (so nothing real goes) and a confirmation.
    for mount, rule, methods, arguments in product.destructive:
        caller = walk.caller_for(mount)
        for value in JUNK:
            path = walk.path(mount, rule, dict.fromkeys(arguments, value))
            for method in methods:
                body = {} if method == "GET" else {"data": {"confirm": "true", "csrf_token": caller.csrf}}
                walk.send(caller, method, path, {}, body)
                if method != "GET":
                    walk.send(caller, method, path, {}, {"json": {"confirm": True, "reason": value}})
    assert product.destructive and walk.sent > 3000  # the walk reached the routes
    assert not walk.failures, f"{len(walk.failures)} server errors:\n" + "\n".join(walk.failures[:15])
