"""The employee's journey in a real headless Chromium: invite link → photos → about you → styles →
format → review → "Submit my photos" → waiting page (→ results when done); and an incomplete
submission showing each error next to its field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from libs.contracts import SESSION_SUBMITTED, SessionState, decode_message
from libs.db import HeadshotSession, OutboxMessage
from tests.e2e.conftest import LiveIntake
from tests.support.intake import (
    astronaut_png,
    coffee_png,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def photo_files(tmp_path: Path) -> dict[str, Path]:
    files = {"astronaut": tmp_path / "astronaut.png", "coffee": tmp_path / "coffee.png"}
    files["astronaut"].write_bytes(astronaut_png())
    files["coffee"].write_bytes(coffee_png())
    return files


def set_state(
    server: LiveIntake, session_id: str, *states: SessionState, done: int = 0, total: int = 0
) -> None:
    with server.db.uow(org_id=server.demo.org_id) as uow:
        session = uow.session.get(HeadshotSession, session_id)
        for state in states:
            session.move_to(state)
        session.progress_done, session.progress_total = done, total
        uow.commit()


def test_the_whole_journey_from_invite_to_waiting_page(page: Page, intake_server: LiveIntake, photo_files):
    page.goto(intake_server.invite(intake_server.demo.employees[0]))
    expect(page.get_by_role("heading", name="Hi Bea, let's create your headshots")).to_be_visible()
    session_id = re.search(r"/sessions/([0-9a-f-]{36})$", page.url).group(1)

    # 1. Photos: two at once; each gets its own verdict.
    page.set_input_files("#photo-input", [str(photo_files["astronaut"]), str(photo_files["coffee"])])
    accepted = page.locator(".photo.ok")
    expect(accepted).to_have_count(1)
    expect(accepted.locator(".verdict")).to_have_text("✓ Looks good")
    expect(accepted.locator(".thumb img")).to_have_attribute("src", re.compile(r"/thumb\.jpg$"))
    refused = page.locator(".photo.bad")
    expect(refused).to_contain_text("coffee.png")
    expect(refused).to_contain_text("This photo is 600 x 400 pixels; it needs to be at least 512 x 512.")
    refused.get_by_role("button").click()  # dismiss the refused one
    expect(refused).to_have_count(0)
    expect(page.locator("#photo-count")).to_have_text("1 photo accepted")

    # 2. About you: each answer is saved as it is given.
    page.fill("#full_name", "Bea Employee")
    page.locator("label.chip", has_text="Female").click()
    page.locator("label.chip", has_text="Hazel").click()
    page.locator("label.option", has_text="Without glasses").click()
    expect(page.locator('[data-save-state="info"]')).to_have_text("✓ Saved")

    # 3. Styles: the package's own are shown as included; pick two more.
    expect(page.locator(".included")).to_contain_text("Deep navy · Dark suit")
    navy = page.locator(".backdrop", has_text="Deep navy")
    navy.locator("label.chip", has_text="Business shirt").click()
    page.locator(".backdrop", has_text="Clean white").locator("label.chip", has_text="Smart knitwear").click()
    expect(page.locator("#style-counter")).to_have_text("· 2 of 8 chosen")
    expect(page.locator('[data-save-state="styles"]')).to_have_text("✓ Saved")

    # 4. Format: Executive offers portrait.
    page.locator("label.option", has_text="Portrait 4:5").click()
    expect(page.locator('[data-save-state="format"]')).to_have_text("✓ Saved")

    # 5. Review: everything on one page, then the two confirmations.
    summary = page.locator("#summary")
    expect(summary.locator('[data-summary="full_name"]')).to_have_text("Bea Employee")
    expect(summary.locator('[data-summary="eye_color"]')).to_have_text("Hazel")
    expect(summary.locator('[data-summary="styles"]')).to_contain_text("Clean white · Smart knitwear")
    expect(summary.locator('[data-summary="format"]')).to_have_text("Portrait 4:5")
    expect(summary.locator(".thumb-strip img")).to_have_count(1)
    page.locator("#agree_terms").click()
    page.locator("#best_photos").click()
    page.get_by_role("button", name="Submit my photos").click()

    page.wait_for_url(f"**/sessions/{session_id}/waiting")
    expect(page.get_by_role("heading", name="Thanks, your photos are in!")).to_be_visible()
    expect(page.locator("#stage-list li.current")).to_have_text("Submitted")

    with intake_server.db.session(all_orgs=True) as s:
        bodies = s.scalars(select(OutboxMessage.body)).all()
    assert len(bodies) == 1
    message = decode_message(bodies[0])
    assert message.event is SESSION_SUBMITTED
    assert message.data["styles"][:2] == ["navy:shirt", "white:knit"]
    assert message.data["format"] == "portrait"

    # The waiting page follows the session (polling every 2 s) and opens the results when done.
    set_state(intake_server, session_id, SessionState.QUEUED, SessionState.PREPROCESSING,
              SessionState.TRAINING, SessionState.GENERATING, done=3, total=12)  # fmt: skip
    expect(page.locator("#progress-text")).to_have_text("Creating your headshots · 3 of 12", timeout=6000)
    expect(page.locator("#stage-list li.done")).to_have_count(4)
    set_state(intake_server, session_id, SessionState.COMPLETED, done=12, total=12)
    page.wait_for_url(f"**/sessions/{session_id}/results", timeout=6000)
    expect(page.get_by_role("heading", name="Your headshots aren't ready yet")).to_be_visible()


def test_an_incomplete_submission_shows_each_error_next_to_its_field(page: Page, intake_server: LiveIntake):
    page.goto(intake_server.invite(intake_server.demo.employees[1]))
    page.fill("#full_name", "Carl Employee")
    page.locator("#best_photos").click()
    page.get_by_role("button", name="Submit my photos").click()

    summary = page.locator("#error-summary")
    expect(summary).to_be_visible()
    expect(summary).to_contain_text("Please fix these 6 things before submitting")
    expect(page.locator("#err-photos")).to_have_text("Please add at least one photo of yourself.")
    expect(page.locator("#err-full_name")).to_have_text("")
    expect(page.locator("#err-gender")).to_have_text("Please choose a gender.")
    expect(page.locator("#err-eye_color")).to_have_text("Please choose an eye colour.")
    expect(page.locator("#err-glasses")).to_have_text("Please choose whether to show glasses.")
    expect(page.locator("#err-styles")).to_have_text("Please choose at least one style.")
    expect(page.locator("#err-agree_terms")).to_have_text("Please accept the terms to continue.")
    expect(page.locator("#err-best_photos")).to_have_text("")
    # What was entered is still there, and the error links lead to the fields.
    expect(page.locator("#full_name")).to_have_value("Carl Employee")
    expect(page.locator('#best_photos input[type="checkbox"]')).to_be_checked()
    summary.get_by_role("link", name="Styles").click()
    assert page.url.endswith("#styles")

    # Fixing one field clears its message as it is saved.
    page.get_by_role("radio", name="Male", exact=True).check()
    expect(page.locator("#err-gender")).to_have_text("")
    with intake_server.db.session(all_orgs=True) as s:
        assert s.scalars(select(OutboxMessage)).all() == []
