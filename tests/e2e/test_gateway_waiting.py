"""The waiting page in a real Chromium, against the embedded product (intake + gateway in the
launcher's server, memory:// + SQLite). Events are written the way workers write them (state
change + outbox row, published by the relay): the bar moves, thumbnails appear, a reload in the
middle shows the same state, a forged join is refused, and completion opens the results."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from libs.contracts import (
    HEADSHOT_GENERATED,
    MODEL_TRAINED,
    PHOTOS_PROCESSED,
    SESSION_APPROVED,
    SESSION_COMPLETED,
    SESSION_FAILED,
    SESSION_REJECTED,
    SessionState,
)
from libs.db import Database, HeadshotSession, utcnow
from libs.db.demo import DemoData, seed_demo
from libs.messaging.testing import wait_for
from libs.settings import Settings
from libs.storage import BlobStore
from libs.web import invite_url
from tests.support.gateway import event, new_session, record, start_product, stored_headshot

S = SessionState


@dataclass
class Live:
    url: str
    settings: Settings
    db: Database
    blobs: BlobStore
    demo: DemoData


SOCKETIO_JS = Path(__file__).resolve().parents[2] / "services/intake/static/vendor/socket.io.min.js"


@pytest.fixture
def live(tmp_path: Path, sqlite_url: str) -> Iterator[Live]:
    if not SOCKETIO_JS.is_file():
        pytest.fail(f"{SOCKETIO_JS} is missing: fetch it with `make vendor` (npm registry)", pytrace=False)
    settings = Settings(
        VAR_DIR=str(tmp_path / "var"),
        DATABASE_URL=sqlite_url,
        BROKER_URL=f"memory://{uuid.uuid4().hex[:8]}/",
        SECRET_KEY="e2e-secret",
    )
    running = start_product(settings)
    platform = running.platform
    try:
        yield Live(
            platform.settings.public_url,
            platform.settings,
            platform.db,
            platform.blobs,
            seed_demo(platform.db),
        )
    finally:
        running.shutdown()


def _jpeg(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (400, 500), color).save(out, "JPEG")
    return out.getvalue()


def _bar(page: Page) -> int:
    return int(page.get_attribute("#progress", "aria-valuenow") or 0)


def _open_waiting(page: Page, live: Live, sid: str, who: int = 0) -> None:
    page.goto(invite_url(live.settings, live.demo.employees[who]))
    page.wait_for_url(f"**/sessions/{sid}/waiting")
    page.wait_for_selector("#waiting[data-transport=live]")


def test_the_page_moves_by_itself_and_ends_on_the_results(page: Page, live: Live) -> None:
    bea = live.demo.employees[0]
    org = str(bea.org_id)
    sid = new_session(live.db, bea, S.SUBMITTED)
    _open_waiting(page, live, sid)
    assert page.get_attribute("#stage-list li.current", "data-state") == "submitted"

    record(live.db, event(SESSION_APPROVED, org, sid, auto=True, reviewer_id=None), state=S.QUEUED)
    page.wait_for_selector("#stage-list li.current[data-state=queued]")
    record(live.db, event(PHOTOS_PROCESSED, org, sid, photo_ids=["p"]), state=S.TRAINING)
    record(
        live.db,
        event(MODEL_TRAINED, org, sid, person_model_id="m", engine="studio", seconds=1.0),
        state=S.GENERATING,
    )
    page.wait_for_selector("#stage-list li.current[data-state=generating]")
    assert page.text_content("#announce") == "Now: Creating your headshots"

    before = _bar(page)
    for done in (1, 2, 3):
        shot = stored_headshot(live.blobs, org, sid, done - 1, _jpeg((40 * done, 80, 120)))
        message = event(
            HEADSHOT_GENERATED, org, sid, headshot_id=shot.id, style="navy:suit", done=done, total=4
        )
        record(live.db, message, progress=(done, 4), headshot=shot)
        expect(page.locator("#thumbs img")).to_have_count(done)
        assert _bar(page) > before
        before = _bar(page)
    # The thumbnails really load (through intake's signed links), not just their tags.
    # (a polled predicate string would be an eval, which the page's CSP refuses: poll from here)
    wait_for(
        lambda: page.locator("#thumbs img").evaluate_all("imgs => imgs.every(i => i.naturalWidth > 0)"),
        "every thumbnail to load",
        timeout=30,
    )
    assert "3 of 4" in (page.text_content("#progress-text") or "")

    # A reload in the middle shows the same state, then keeps following.
    page.reload()
    page.wait_for_selector("#waiting[data-transport=live]")
    assert page.get_attribute("#stage-list li.current", "data-state") == "generating"
    assert page.locator("#thumbs img").count() == 3
    assert "3 of 4" in (page.text_content("#progress-text") or "")

    shot = stored_headshot(live.blobs, org, sid, 3, _jpeg((200, 80, 120)))
    record(
        live.db,
        event(HEADSHOT_GENERATED, org, sid, headshot_id=shot.id, style="navy:suit", done=4, total=4),
        progress=(4, 4),
        headshot=shot,
    )
    expect(page.locator("#thumbs img")).to_have_count(4)
    with live.db.uow(org_id=org) as uow:  # completion as the generation worker records it
        hs = uow.session.get(HeadshotSession, sid)
        assert hs is not None
        hs.state, hs.completed_at = S.COMPLETED, utcnow()
        uow.add_message(event(SESSION_COMPLETED, org, sid, headshot_count=4))
        uow.commit()
    page.wait_for_url(f"**/sessions/{sid}/results")
    assert page.locator(".shot img").count() == 4
    assert page.is_visible("#engine-note")


def test_a_forged_join_is_refused_in_the_browser(page: Page, live: Live) -> None:
    bea, carl = live.demo.employees
    sid = new_session(live.db, bea, S.QUEUED)
    theirs = new_session(live.db, carl, S.QUEUED)
    _open_waiting(page, live, sid)
    outcome = page.evaluate(
        """([sessionId, path]) => new Promise((resolve) => {
             const socket = io("/progress", {path, reconnection: false, auth: {session_id: sessionId, token: "forged"}});
             socket.on("connect", () => resolve("connected"));
             socket.on("connect_error", (err) => resolve(err.message));
           })""",
        [theirs, "/gateway/socket.io"],
    )
    assert outcome == "unauthorized"


def test_without_the_socketio_client_the_page_polls(page: Page, live: Live) -> None:
    bea = live.demo.employees[0]
    org = str(bea.org_id)
    sid = new_session(live.db, bea, S.QUEUED)
    page.route("**/vendor/socket.io.min.js", lambda route: route.abort())
    page.goto(invite_url(live.settings, bea))
    page.wait_for_selector("#waiting[data-transport=polling]")
    record(live.db, event(PHOTOS_PROCESSED, org, sid, photo_ids=["p"]), state=S.TRAINING)
    page.wait_for_selector("#stage-list li.current[data-state=training]", timeout=20_000)


def test_a_rejection_goes_back_to_onboarding_and_a_failure_says_what_to_do(page: Page, live: Live) -> None:
    bea, carl = live.demo.employees
    org = str(bea.org_id)
    failing = new_session(live.db, carl, S.GENERATING)
    _open_waiting(page, live, failing, who=1)
    reason = "The person model could not be trained from these photos."
    with live.db.uow(org_id=org) as uow:
        hs = uow.session.get(HeadshotSession, failing)
        assert hs is not None
        hs.state, hs.failure_reason = S.FAILED, reason
        uow.add_message(event(SESSION_FAILED, org, failing, stage="generating", reason=reason))
        uow.commit()
    page.wait_for_selector("#problem:not([hidden])")
    assert page.text_content("#problem-reason") == reason
    assert "you don't need to upload anything again" in (page.text_content("#problem-next") or "")

    sent_back = new_session(live.db, bea, S.IN_REVIEW)
    _open_waiting(page, live, sent_back)
    why = "Please upload photos without sunglasses."
    message = event(SESSION_REJECTED, org, sent_back, reviewer_id=live.demo.admin.id, reason=why)
    record(live.db, message, state=S.REJECTED)  # intake's handler moves it back to onboarding
    page.wait_for_url(f"**/sessions/{sent_back}")
    assert why in page.content()


def test_with_no_gateway_at_all_the_page_polls_intake(page: Page, intake_server: Any) -> None:
    bea = intake_server.demo.employees[0]
    sid = new_session(intake_server.db, bea, S.SUBMITTED)
    page.goto(intake_server.invite(bea))
    page.wait_for_url(f"**/sessions/{sid}/waiting")
    with intake_server.db.uow(org_id=bea.org_id) as uow:  # state only, as the status API shows it
        hs = uow.session.get(HeadshotSession, sid)
        assert hs is not None
        hs.state, hs.progress_done, hs.progress_total = S.GENERATING, 3, 12
        uow.commit()
    page.wait_for_selector("#stage-list li.current[data-state=generating]")
    assert page.get_attribute("#waiting", "data-transport") != "live"
    assert "3 of 12" in (page.text_content("#progress-text") or "")
    with intake_server.db.uow(org_id=bea.org_id) as uow:
        hs = uow.session.get(HeadshotSession, sid)
        assert hs is not None
        hs.state = S.COMPLETED
        uow.commit()
    page.wait_for_url(f"**/sessions/{sid}/results")


def test_once_the_page_leaves_for_the_results_nothing_starts_a_second_navigation(
    page: Page, intake_server: Any
) -> None:
    # No gateway: the live connection keeps retrying, and each failed retry asks the status poll to
    # (re)start. While the results page is still loading, a poll that started then would see
    # "completed" again and navigate a second time, aborting the first navigation (what the person
    # sees: a results page that loads twice, or an error page in a slow network).
    bea = intake_server.demo.employees[0]
    sid = new_session(intake_server.db, bea, S.GENERATING)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    held: list[Any] = []
    page.route(f"**/sessions/{sid}/results", lambda route: held.append(route))  # answered later
    page.goto(intake_server.invite(bea))
    page.wait_for_url(f"**/sessions/{sid}/waiting")
    with intake_server.db.uow(org_id=bea.org_id) as uow:
        hs = uow.session.get(HeadshotSession, sid)
        assert hs is not None
        hs.state = S.COMPLETED
        uow.commit()
    wait_for(lambda: _pump(page) and held, "the page to ask for its results", timeout=30)
    asked_at = len(requests)
    # At least one more retry of the live connection while the results are on their way (its
    # delay grows to 10 s at most, give or take half).
    wait_for(
        lambda: _pump(page) and any("/socket.io/" in url for url in requests[asked_at:]),
        "a retry",
        timeout=30,
    )
    _pump(page, 1000)  # the poll such a retry would start runs at once
    assert not [url for url in requests[asked_at:] if "/status" in url]
    assert [url for url in requests if url.endswith("/results")] == [requests[asked_at - 1]]
    held[0].continue_()
    page.wait_for_url(f"**/sessions/{sid}/results")


def _pump(page: Page, ms: int = 50) -> bool:
    """Let the page run for ``ms`` (Playwright's sync API delivers its events while it waits)."""
    page.wait_for_timeout(ms)
    return True
