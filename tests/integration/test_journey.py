"""The whole product as `make run` starts it (and the same on RabbitMQ + PostgreSQL): an employee submits through the
API and the session goes through review (automatic), preparation, training and generation to
completed by itself; the person gets the confirmation and ready e-mails, and the personal info is
erased."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from libs.db import Headshot, HeadshotSession
from libs.db.demo import DemoData, seed_demo
from libs.messaging.testing import wait_for
from libs.settings import Settings
from libs.web import invite_url
from services import launcher
from tests.support.intake import (
    astronaut_png,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def product(backend: Settings) -> Iterator[tuple[launcher.Running, DemoData]]:
    """Every service in one process: embedded (memory://, SQLite) and on RabbitMQ + PostgreSQL."""
    running = launcher.start(backend.replace(PORT=0))
    try:
        yield running, seed_demo(running.platform.db)
    finally:
        running.shutdown()


def wait_for_state(http: requests.Session, url: str, wanted: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        status = http.get(url, timeout=10).json()
        if not seen or seen[-1] != status["state"]:
            seen.append(status["state"])
        if status["state"] == wanted:
            return status
        assert status["state"] != "failed", status
        time.sleep(0.2)
    raise AssertionError(f"never reached {wanted}; states seen: {seen}")


@pytest.mark.timeout(420)
def test_a_submitted_session_reaches_its_results_by_itself(product) -> None:
    running, demo = product
    settings = running.platform.settings
    base = settings.public_url
    marker = f"Journey {uuid.uuid4().hex[:10]}"
    http = requests.Session()
    assert http.get(invite_url(settings, demo.employees[0]), timeout=10).status_code == 200
    current = http.get(f"{base}/api/v1/sessions/current", timeout=10).json()
    sid, headers = current["id"], {"X-CSRF-Token": current["csrf_token"]}
    api = f"{base}/api/v1/sessions/{sid}"
    answer = http.post(f"{api}/photos", files={"photo": ("me.png", astronaut_png())}, headers=headers)
    assert answer.status_code == 201, answer.text
    info = {"full_name": marker, "gender": "female", "eye_color": "brown", "glasses": "no_glasses"}
    assert http.put(f"{api}/info", json=info, headers=headers).status_code == 200
    style = current["options"]["styles"][0]
    style_id = style["id"] if isinstance(style, dict) else style
    styles = http.put(f"{api}/styles", json={"styles": [style_id], "format": "standard"}, headers=headers)
    assert styles.status_code == 200, styles.text
    submit = http.post(f"{api}/submit", json={"agree_terms": True, "best_photos": True}, headers=headers)
    assert submit.status_code == 200, submit.text

    wait_for_state(http, f"{api}/status", "completed")

    db = running.platform.db

    def erased() -> bool:  # intake erases on the completion event, a moment after the status moves
        with db.session(all_orgs=True) as s:
            return s.get(HeadshotSession, sid).personal_info_erased_at is not None

    wait_for(erased, "the personal info to be erased", timeout=120)
    with db.session(all_orgs=True) as s:
        hs = s.get(HeadshotSession, sid)
        headshots = s.scalars(select(Headshot).where(Headshot.session_id == sid)).all()
        assert hs.full_name is None and hs.personal_info_erased_at is not None
    assert len(headshots) == 4 * (1 + 3)  # executive: 4 per style, the chosen one + 3 pre-selected
    mailbox = Path(settings.VAR_DIR) / "mail"
    # "ready" is sent by the notification service on the same event that completes the session: it
    # may land a moment after the status says completed.
    wait_for(
        lambda: len(list(mailbox.rglob("*.eml"))) >= 2, "the confirmation and ready e-mails", timeout=120
    )
    mails = sorted(mailbox.rglob("*.eml"))
    subjects = [line for m in mails for line in m.read_text().splitlines() if line.startswith("Subject:")]
    assert len(subjects) == 2, subjects  # the confirmation and "ready", once each
    everything = "".join(m.read_text() for m in mails)
    assert marker not in everything  # e-mails greet by the account's name, never the session's
