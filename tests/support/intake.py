"""Helpers shared by the intake tests (unit, integration and e2e): photos, settings, signing in,
uploading, outbox counts. The fixtures built on them (``intake_settings``, ``db``, ``demo``,
``blobs``, ``app``) live in tests/unit/conftest.py.

Real photos come from scikit-image's bundled data (no download): the astronaut is a portrait that
passes every check, the coffee cup has no face, a 200 px crop is too small.
"""

from __future__ import annotations

import io
import re
import threading
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import func, select

from libs.contracts import SessionState
from libs.db import ChosenStyle, Database, Headshot, HeadshotSession, OutboxMessage, Photo, User
from libs.settings import Settings
from libs.storage import BlobStore
from libs.web import invite_url

SESSION_PATH = re.compile(r"/sessions/([0-9a-f-]{36})")


def png_bytes(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


@cache
def astronaut_png() -> bytes:
    from skimage import data

    return png_bytes(data.astronaut())


@cache
def coffee_png() -> bytes:
    from skimage import data

    return png_bytes(data.coffee())  # 600 x 400, a cup: no face


@cache
def tiny_png() -> bytes:
    from skimage import data

    return png_bytes(data.astronaut()[:200, :200])


@cache
def astronaut_embedding() -> list[float]:
    from libs.imaging import PhotoLimits, check_photo

    return list(check_photo(astronaut_png(), PhotoLimits()).embedding)


def intake_settings_for(tmp_path: Path, database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": database_url,
        "BROKER_URL": f"memory://{uuid.uuid4().hex[:8]}/",
        "SECRET_KEY": "test-secret",
        # skimage's coffee cup is 600 x 400: below the 512 px default it would be "too small"
        # before the face check; 256 lets it reach "no face".
        "MIN_PHOTO_SIDE": 256,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@dataclass
class SignedIn:
    client: FlaskClient
    user: User
    session_id: str
    csrf: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf}

    def api(self, path: str = "") -> str:
        return f"/api/v1/sessions/{self.session_id}{path}"


def sign_in(app: Flask, settings: Settings, user: User) -> SignedIn:
    """Open the person's invite link in a fresh client, as a browser would."""
    client = app.test_client()
    link = invite_url(settings, user).removeprefix(settings.public_url)
    response = client.get(link)
    assert response.status_code == 303, response.data[:300]
    match = SESSION_PATH.search(response.headers["Location"])
    assert match, response.headers["Location"]
    current = client.get("/api/v1/sessions/current")
    assert current.status_code == 200 and current.json is not None
    return SignedIn(client, user, match.group(1), current.json["csrf_token"])


def upload(who: SignedIn, data: bytes, name: str = "photo.png"):  # -> TestResponse
    return who.client.post(
        who.api("/photos"),
        data={"photo": (io.BytesIO(data), name)},
        headers=who.headers,
        content_type="multipart/form-data",
    )


def add_photo(db: Database, org_id: str, session_id: str, embedding: list[float] | None = None) -> str:
    """A Photo row without running the checks (fast setup for tests about other rules)."""
    with db.uow(org_id=org_id) as uow:
        photo = Photo(
            org_id=org_id,
            session_id=session_id,
            original_key="originals/2026/01/" + uuid.uuid4().hex + ".png",
            clean_key="photos/2026/01/" + uuid.uuid4().hex + ".jpg",
            width=512,
            height=512,
            face_box={"x": 175, "y": 76, "w": 91, "h": 91, "score": 1.2},
            embedding=embedding or [0.0] * 128,
        )
        uow.session.add(photo)
        uow.commit()
        return photo.id


def outbox_count(db: Database, routing_key: str | None = None) -> int:
    with db.session(all_orgs=True) as s:
        query = select(func.count()).select_from(OutboxMessage)
        if routing_key is not None:
            query = query.where(OutboxMessage.routing_key == routing_key)
        return int(s.scalar(query) or 0)


COMPLETE_INFO = {
    "full_name": "Bea Employee",
    "gender": "female",
    "eye_color": "brown",
    "glasses": "no_glasses",
}


def submit_concurrently(
    db: Database, actor: Any, session_id: str, confirm: dict[str, Any], n: int = 4
) -> list[bool]:
    """Press Submit ``n`` times at once (double clicks, two tabs); returns each call's ``submitted_now``."""
    from services.intake import forms, submission

    outcomes: list[bool] = []
    failures: list[BaseException] = []
    gate = threading.Barrier(n)

    def submit() -> None:
        try:
            gate.wait()
            with db.uow(org_id=actor.org_id) as uow:
                command = forms.submission_command(uow, actor, session_id, confirm)
                outcomes.append(submission.submit(uow, actor, command).submitted_now)
        except BaseException as exc:  # reported below: a thread's exception would be lost
            failures.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not failures, failures
    return outcomes


def error_of(response) -> dict:  # type: ignore[no-untyped-def]
    """The ``error`` member of an error answer, checked to carry the answer's own status."""
    body = response.get_json()
    assert body is not None and set(body) == {"error"}, response.data[:300]
    assert body["error"]["status"] == response.status_code
    return body["error"]


def complete_with_headshots(db: Database, blobs: BlobStore, org_id: str, session_id: str) -> list[bytes]:
    """Move the session to ``completed`` with four PNG headshots in two styles (navy:shirt chosen,
    studio-grey:suit pre-selected); returns their bytes in order."""
    S = SessionState
    images = []
    with db.uow(org_id=org_id) as uow:
        session = uow.session.get(HeadshotSession, session_id)
        assert session is not None, session_id
        for state in (S.SUBMITTED, S.QUEUED, S.PREPROCESSING, S.TRAINING, S.GENERATING, S.COMPLETED):
            session.move_to(state)
        for position, (style, pre) in enumerate([("navy:shirt", False), ("studio-grey:suit", True)]):
            uow.session.add(
                ChosenStyle(
                    org_id=org_id, session_id=session_id, style_id=style, preselected=pre, position=position
                )
            )
            for index in range(2):
                data = png_bytes(np.full((64, 96, 3), 40 * (position * 2 + index), dtype=np.uint8))
                images.append(data)
                uow.session.add(
                    Headshot(
                        org_id=org_id,
                        session_id=session_id,
                        style_id=style,
                        index_in_style=index,
                        position=position * 2 + index,
                        blob_key=blobs.put(data, kind="headshots", ext="png"),
                        width=96,
                        height=64,
                        seed=index,
                    )
                )
        uow.commit()
    return images
