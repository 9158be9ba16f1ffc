"""Under the strict Content-Security-Policy in a real Chromium: the error page works (the `page`
fixture fails the test on any policy violation), and no other site can frame intake's pages."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import PHONE, LiveIntake

pytestmark = pytest.mark.e2e


def test_the_error_page_is_styled_without_inline_css(page: Page, intake_server: LiveIntake):
    page.goto(f"{intake_server.url}/no-such-page")
    expect(page.get_by_role("heading", name="The requested URL was not found on the server.")).to_be_visible()
    expect(page.get_by_role("link", name="Go back")).to_have_attribute("href", "/")
    # error.css is applied: the page is a narrow centred column, not the browser's default.
    assert page.evaluate("getComputedStyle(document.body).maxWidth") != "none"


def test_another_site_cannot_frame_the_onboarding_page(browser: Browser, intake_server: LiveIntake):
    context = browser.new_context(viewport=PHONE)
    try:
        tab = context.new_page()
        invite = intake_server.invite(intake_server.demo.employees[0])
        # about:blank with our own markup: a page that is not intake's origin. Chromium says why it
        # refuses to show the frame on the console.
        with tab.expect_console_message(lambda msg: "frame-ancestors 'none'" in msg.text, timeout=30_000):
            tab.set_content(f'<iframe id="victim" src="{invite}" width="390" height="600"></iframe>')
        frame = tab.frame_locator("#victim")
        expect(frame.get_by_role("button", name="Submit my photos")).to_have_count(0)
    finally:
        context.close()
