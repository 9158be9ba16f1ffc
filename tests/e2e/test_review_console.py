"""The org admin's console in a real headless Chromium, with intake and the policy worker running
in the embedded launcher (memory:// broker, SQLite): a person submits, the admin rejects with a
reason, the person reads it and submits again, the admin approves and the session moves on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from libs.contracts import WEBHOOK_TESTED, SessionState
from libs.db import ChosenStyle
from libs.db.demo import DemoData, seed_demo
from libs.messaging.testing import wait_for
from libs.settings import Settings
from libs.web import invite_url
from services import launcher
from services.review.views_sign_in import admin_invite_url
from tests.e2e.conftest import PHONE
from tests.support.review import make_session, session_state, set_org, store_photo

pytestmark = pytest.mark.e2e

S = SessionState


@pytest.fixture(name="product")
def product_fixture(tmp_path: Path, sqlite_url: str) -> Iterator[launcher.Running]:
    settings = Settings(
        VAR_DIR=str(tmp_path / "var"),
        DATABASE_URL=sqlite_url,
        BROKER_URL=f"memory://{uuid.uuid4().hex[:8]}/",
        SECRET_KEY="e2e-secret",
        HOST="127.0.0.1",
        PORT=0,
    )
    running = launcher.start(settings, only={"intake", "review"})
    try:
        yield running
    finally:
        running.shutdown()


def tab(browser: Browser, problems: list[str]) -> Page:
    context = browser.new_context(viewport=PHONE, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("pageerror", lambda exc: problems.append(f"JavaScript error: {exc}"))
    # The console runs under a strict Content-Security-Policy: any violation is a failure.
    page.on(
        "console",
        lambda msg: problems.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    return page


def test_an_admin_rejects_with_a_reason_then_approves_the_resubmission(browser: Browser, product):
    settings = product.platform.settings
    db = product.platform.db
    demo: DemoData = seed_demo(db)
    set_org(db, demo.org_id, manual_review=True)
    bea = demo.employees[0]
    # Bea has done the onboarding work already (photo, answers, one style): only the submit is left.
    sid = make_session(db, demo.org_id, bea.id, S.ONBOARDING, full_name="Bea Employee")
    store_photo(product.platform.blobs, db, demo.org_id, sid)
    with db.uow(org_id=demo.org_id) as uow:
        uow.session.query(ChosenStyle).filter_by(session_id=sid, preselected=True).delete()
        uow.commit()

    problems: list[str] = []
    admin = tab(browser, problems)
    person = tab(browser, [])
    try:
        admin.goto(admin_invite_url(settings, demo.admin))
        expect(admin.get_by_role("heading", name="Review queue")).to_be_visible()
        expect(admin.get_by_text("Nothing to review.")).to_be_visible()

        # The person submits; the policy worker puts the session in review.
        person.goto(invite_url(settings, bea))
        person.locator("#agree_terms input").check()
        person.locator("#best_photos input").check()
        person.get_by_role("button", name="Submit my photos").click()
        wait_for(lambda: session_state(db, demo.org_id, sid) == S.IN_REVIEW, "the session to wait for review")

        # The admin sees it with its photo, answers and styles; a reason is required to reject.
        admin.reload()
        card = admin.locator(f"#s-{sid}")
        expect(card.get_by_role("heading", name="Bea Employee")).to_be_visible()
        expect(card).to_contain_text("Deep navy · Business shirt")
        expect(card).to_contain_text("Portrait 4:5")
        thumb = card.locator(".photos img").first
        expect(thumb).to_be_visible()
        wait_for(lambda: thumb.evaluate("img => img.complete && img.naturalWidth > 0"), "the thumbnail")
        card.get_by_role("button", name="Reject").click()
        card = admin.locator(f"#s-{sid}")
        expect(card.locator(".field-error")).to_have_text("Please tell the person what to change.")
        card.get_by_label("Reason (the person will read it)").fill("Please add a photo without sunglasses.")
        card.get_by_role("button", name="Reject").click()
        expect(admin.locator(".flashes")).to_contain_text("Sent back with your reason")
        expect(admin.get_by_text("Nothing to review.")).to_be_visible()

        # Intake takes the session back to onboarding; the person reads why and submits again.
        wait_for(
            lambda: session_state(db, demo.org_id, sid) == S.ONBOARDING, "the session back in onboarding"
        )
        person.goto(f"{settings.public_url}/sessions/{sid}")
        expect(person.get_by_text("Your admin asked for a few changes")).to_be_visible()
        expect(person.get_by_text("Please add a photo without sunglasses.", exact=False)).to_be_visible()
        person.locator("#agree_terms input").check()
        person.locator("#best_photos input").check()
        person.get_by_role("button", name="Submit my photos").click()
        wait_for(
            lambda: session_state(db, demo.org_id, sid) == S.IN_REVIEW, "the resubmission to wait for review"
        )

        admin.reload()
        admin.locator(f"#s-{sid}").get_by_role("button", name="Approve").click()
        expect(admin.locator(".flashes")).to_contain_text("Approved")
        assert session_state(db, demo.org_id, sid) == S.QUEUED

        # The other pages open and render under the same policy.
        for name, heading in (("Team", "Team"), ("Settings", "Settings"), ("Invite", "Invite people")):
            admin.get_by_role("link", name=name, exact=True).click()
            expect(admin.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        admin.get_by_role("link", name="Settings", exact=True).click()
        expect(admin.locator("#audit")).to_contain_text("session.approve")
    finally:
        admin.context.close()
        person.context.close()
    assert not problems, problems


def test_an_admin_sends_a_test_event_and_sees_it_delivered(browser: Browser, tmp_path: Path, sqlite_url: str):
    """Settings → "Send a test event": the notification service's dispatcher posts it, signed, to a
    real endpoint on loopback, and the deliveries list shows it delivered."""
    from tests.support.notification import WebhookReceiver, verify_headshots_webhook

    receiver = WebhookReceiver(status=200)
    settings = Settings(
        VAR_DIR=str(tmp_path / "var"),
        DATABASE_URL=sqlite_url,
        BROKER_URL=f"memory://{uuid.uuid4().hex[:8]}/",
        SECRET_KEY="e2e-secret",
        HOST="127.0.0.1",
        PORT=0,
        WEBHOOK_ALLOW_PRIVATE=True,  # the receiver listens on loopback
        WEBHOOK_POLL_SECONDS=0.2,
    )
    running = launcher.start(settings, only={"review", "notification"})
    problems: list[str] = []
    admin = tab(browser, problems)
    try:
        demo: DemoData = seed_demo(running.platform.db)
        admin.goto(admin_invite_url(running.platform.settings, demo.admin))
        admin.get_by_role("link", name="Settings", exact=True).click()
        admin.get_by_label("Webhook address").fill(receiver.url)
        admin.get_by_role("button", name="Save settings").click()
        expect(admin.locator(".flashes")).to_contain_text("Settings saved.")
        admin.once("dialog", lambda dialog: dialog.accept())  # "Replace the webhook secret?"
        admin.get_by_role("button", name="Create secret").click()
        secret = admin.locator("#new-secret").inner_text().strip()

        admin.get_by_role("button", name="Send a test event").click()
        expect(admin.locator(".flashes")).to_contain_text("test event is on its way")
        row = admin.locator("#webhook-deliveries tbody tr").first
        expect(row).to_contain_text(WEBHOOK_TESTED.routing_key)
        wait_for(lambda: _delivery_statuses(running.platform.db) == ["delivered"], "the test event delivered")
        admin.reload()
        expect(admin.locator("#webhook-deliveries tbody tr").first.locator(".status")).to_have_text(
            "delivered"
        )
        [received] = receiver.received
        assert verify_headshots_webhook(secret, received.headers, received.body)
    finally:
        admin.context.close()
        running.shutdown()
        receiver.close()
    assert not problems, problems


def _delivery_statuses(db) -> list[str]:
    from libs.db import WebhookDelivery

    with db.session(all_orgs=True) as s:
        return [d.status for d in s.query(WebhookDelivery)]
