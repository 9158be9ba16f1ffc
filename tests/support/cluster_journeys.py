"""The system tests' 20 sessions and what they must have led to, shared by the plain run and the
fault run (tests/system/).

    journeys = Journeys(product)
    journeys.start(pool)                    # invites, then every API person in the pool
    journeys.browser_sessions(browser)      # 2 people through the pages (optional), or in two steps:
    pages = journeys.open_pages(browser)    #   up to their waiting pages,
    journeys.pages_reach_results(pages)     #   which must move to the results by themselves
    journeys.wait()                         # every session completed
    tally = journeys.tally(settings)        # lost / duplicated / dead-lettered, with the reasons

Three organizations on the Starter package (the fewest headshots a session): Acme (automatic
approval), Globex (manual review: approved through the org API), Initech (renewal: one person
completes a session, starts a second, and the first one's person model is retired).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, Request, Response, expect
from sqlalchemy import func, select

from libs.contracts import SESSION_APPROVED, SESSION_COMPLETED, SESSION_SUBMITTED
from libs.db import EmailSend, OutboxMessage, WebhookDelivery
from libs.messaging import dead_letter_queues, list_dead_letters, queue_depths
from libs.messaging.testing import wait_for
from libs.settings import Settings
from tests.support.cluster import HEADSHOTS_PER_SESSION, Org, Product
from tests.support.intake import astronaut_png

SESSIONS = 20
API_PEOPLE = {"Acme": 13, "Globex": 3}  # + 2 Acme people in the browser + Initech's 2 sessions
API_FIRST_SESSIONS = sum(API_PEOPLE.values()) + 1  # Initech's second one comes once its first completed
BROWSER_PEOPLE = 2
SUBMITTED, READY = "We have your photos", "Your headshots are ready"
WEBHOOK_EVENTS = tuple(e.routing_key for e in (SESSION_SUBMITTED, SESSION_APPROVED, SESSION_COMPLETED))


@dataclass
class Tally:
    lost: int = 0
    duplicated: int = 0
    dead_lettered: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, kind: str, n: int, what: str) -> None:
        if n:
            setattr(self, kind, getattr(self, kind) + n)
            self.problems.append(f"{kind} {n}: {what}")

    def line(self, label: str) -> str:
        return (
            f"{label}: lost {self.lost} / duplicated {self.duplicated} / dead-lettered {self.dead_lettered}"
        )


class Journeys:
    def __init__(self, product: Product, *, browser_people: int = BROWSER_PEOPLE) -> None:
        self.product = product
        self.acme = product.create_org("Acme")
        self.globex = product.create_org("Globex", manual_review=True)
        self.initech = product.create_org("Initech", renewal=True)
        self.emails: dict[str, Org] = {}
        self.browser_emails: list[str] = []
        for org, n in ((self.acme, API_PEOPLE["Acme"] + (BROWSER_PEOPLE - browser_people)),
                       (self.globex, API_PEOPLE["Globex"]), (self.initech, 1)):  # fmt: skip
            for i in range(n):
                self.emails[f"{org.name.lower()}{i}@{org.name.lower()}.example"] = org
        for i in range(browser_people):
            self.browser_emails.append(f"browser{i}@acme.example")
        self.futures: list[Future[list[str]]] = []
        self.sessions: list[str] = []
        self.renewed: tuple[str, str] | None = None
        self.submitted_per_email: Counter[str] = Counter()
        self.invited = False

    # --- running ---------------------------------------------------------------------------------
    def invite(self) -> None:
        for org in (self.acme, self.globex, self.initech):
            invited = [e for e, o in self.emails.items() if o is org]
            if org is self.acme:
                invited += self.browser_emails
            self.product.invite(org, invited)
        self.invited = True

    def start(self, pool: ThreadPoolExecutor) -> None:
        """Every API person in the pool (invited first, unless ``invite()`` was called)."""
        if not self.invited:
            self.invite()
        for email, org in self.emails.items():
            self.futures.append(pool.submit(self._api_journey, email, org))

    def _api_journey(self, email: str, org: Org) -> list[str]:
        person = self.product.person(email)
        first = person.submit(f"Person {email}")
        if org.manual_review:
            self.product.approve_when_in_review(org, first)
        if not org.renewal:
            return [first]
        self.product.wait_completed([first])
        second = person.submit(f"Person {email}", new=True)
        self.renewed = (first, second)
        return [first, second]

    def browser_sessions(self, browser: Browser, folder: Path) -> list[str]:
        """Two people through the pages at once; each waiting page must move to the results by itself."""
        pages = self.open_pages(browser, folder)
        try:
            self.submit_pages(pages)
            return self.pages_reach_results(pages)
        finally:
            pages.close()

    def open_pages(self, browser: Browser, folder: Path) -> Pages:
        """Each browser person from the invite link through the pages, up to the submit button."""
        photo = folder / "me.png"
        photo.write_bytes(astronaut_png())
        pages = Pages()
        try:
            for email in self.browser_emails:
                pages.open(browser)
                page = pages.pages[-1]
                page.goto(self.product.invite_link(email))
                pages.sids.append(_fill_in_page(page, photo))
        except BaseException:
            pages.close()
            raise
        return pages

    def submit_pages(self, pages: Pages, *, behind: int = 0) -> None:
        """Each page submitted, once ``behind`` sessions are submitted already (so that the pages
        wait behind them), and on its waiting page."""
        if behind:
            wait_for(
                lambda: self.product.count_submitted() >= behind, f"{behind} sessions submitted", timeout=600
            )
        for page, sid in zip(pages.pages, pages.sids, strict=True):
            page.get_by_role("button", name="Submit my photos").click()
            page.wait_for_url(f"**/sessions/{sid}/waiting")

    def pages_reach_results(self, pages: Pages) -> list[str]:
        """Each waiting page moves to the results by itself (its own websocket or polling, no help).
        Only the results page's own load may fail (the server answering 5xx while its database
        restarts): then a person would reload it, and so does this, counted in ``pages.reloads``."""
        for page, sid in zip(pages.pages, pages.sids, strict=True):
            page.wait_for_url(f"**/sessions/{sid}/results", timeout=600_000)
            pages.results_at.append(time.monotonic())
            page.wait_for_load_state("load")
            while pages.statuses[id(page)] >= 500:
                pages.reloads += 1
                assert pages.reloads <= 10, f"the results page kept failing: {pages.statuses[id(page)]}"
                time.sleep(2)  # a person looks at the error for a moment, then reloads
                response = page.reload(wait_until="load")
                pages.statuses[id(page)] = response.status if response is not None else 0
            expect(page.locator("img").first).to_be_visible(timeout=60_000)
        self.sessions += pages.sids
        for email in self.browser_emails:
            self.submitted_per_email[email] += 1
        return pages.sids

    def wait(self, timeout: float = 600) -> list[str]:
        for future in self.futures:
            self.sessions += future.result(timeout=timeout)
        for email in self.emails:
            self.submitted_per_email[email] += 2 if self.emails[email].renewal else 1
        assert len(self.sessions) == SESSIONS, self.sessions
        self.product.wait_completed(self.sessions, timeout=timeout)
        return self.sessions

    # --- what it led to --------------------------------------------------------------------------
    def settle(self, settings: Settings, timeout: float = 180) -> None:
        """Until nothing is left in flight: outbox sent, e-mails and webhooks done, queues empty, and
        nothing counted lost any more (a message a consumer holds, retrying, or waiting in a retry
        queue is in no ready count: only its outcome says it was handled)."""
        left: dict[str, object] = {}

        def in_flight(s: Any) -> dict[str, object]:
            return {
                "unsent outbox rows": s.scalar(
                    select(func.count()).select_from(OutboxMessage).where(OutboxMessage.sent_at.is_(None))
                ),
                "e-mails sending or pending": s.execute(
                    select(
                        EmailSend.template, EmailSend.status, EmailSend.attempts, EmailSend.last_error
                    ).where(EmailSend.status.in_(("sending", "pending")))
                ).all(),
                "webhooks pending": s.execute(
                    select(
                        WebhookDelivery.event,
                        WebhookDelivery.attempts,
                        WebhookDelivery.next_attempt_at,
                        WebhookDelivery.last_error,
                    ).where(WebhookDelivery.status == "pending")
                ).all(),  # fmt: skip
            }

        def quiet() -> bool:
            left.clear()
            left.update({k: v for k, v in self.product.read(in_flight).items() if v})
            left.update({q: n for q, n in queue_depths(settings).items() if n and not q.endswith(".dead")})
            missing = [p for p in self.tally(settings, dead_letters=False).problems if p.startswith("lost")]
            if missing:
                left["still missing"] = missing[:5]
            return not left

        try:
            wait_for(quiet, "nothing left in flight", timeout=timeout, interval=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; still in flight: {left}") from None

    def tally(self, settings: Settings, *, poison_id: str | None = None, dead_letters: bool = True) -> Tally:
        tally = Tally()
        p = self.product
        states = p.states(self.sessions)
        tally.add("lost", len(self.sessions) - states["completed"], f"sessions not completed: {states}")
        for sid, n in {sid: p.headshot_counts(self.sessions).get(sid, 0) for sid in self.sessions}.items():
            tally.add("lost", max(0, HEADSHOTS_PER_SESSION - n), f"headshots missing in {sid}")
            tally.add("duplicated", max(0, n - HEADSHOTS_PER_SESSION), f"extra headshots in {sid}")
        not_erased = p.not_erased(self.sessions)
        tally.add("lost", len(not_erased), f"personal info not erased: {not_erased}")
        if self.renewed is not None:
            first, second = self.renewed
            retired = p.retired_models(first)
            tally.add(
                "lost", 0 if retired and all(retired) else 1, f"renewal kept {first}'s model: {retired}"
            )
        mails = p.mail_counts()
        for email, sessions in self.submitted_per_email.items():
            for subject in (SUBMITTED, READY):
                got = sum(n for (to, subj), n in mails.items() if email in to and subj == subject)
                tally.add("lost", max(0, sessions - got), f"{subject!r} to {email}: {got} of {sessions}")
                tally.add(
                    "duplicated", max(0, got - sessions), f"{subject!r} to {email}: {got} of {sessions}"
                )
        seen, unsigned = p.webhook_counts()
        tally.add("lost", unsigned, "webhooks failing their signature check")
        for sid in self.sessions:
            for event in WEBHOOK_EVENTS:
                got = seen[(event, sid)]
                tally.add("lost", max(0, 1 - got), f"webhook {event} for {sid}")
                tally.add("duplicated", max(0, got - 1), f"webhook {event} for {sid}: {got}")
        for queue in dead_letter_queues(settings) if dead_letters else []:
            for dead in list_dead_letters(settings, queue):
                if poison_id is not None and dead.message_id == poison_id:
                    tally.dead_lettered += 1
                else:
                    tally.add("dead_lettered", 1, f"{queue}: {dead.type} {dead.message_id} {dead.reason}")
        return tally


@dataclass
class Pages:
    """The browser people's pages, and what they went through: status polls the server failed
    (answered 5xx or not at all), and reloads a person had to do."""

    contexts: list[BrowserContext] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)
    sids: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)  # id(page) -> its last document's status
    polls: int = 0
    polls_failed: int = 0
    reloads: int = 0
    results_at: list[float] = field(default_factory=list)  # time.monotonic() each page showed results

    def open(self, browser: Browser) -> None:
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(60_000)
        self.contexts.append(context)
        self.pages.append(page)
        self.statuses[id(page)] = 0
        page.on("response", lambda r: self._response(page, r))
        page.on("requestfailed", lambda r: self._failed(r))

    def _response(self, page: Page, response: Response) -> None:
        if response.request.is_navigation_request() and response.frame == page.main_frame:
            self.statuses[id(page)] = response.status
        elif response.url.endswith("/status"):
            self.polls += 1
            self.polls_failed += response.status >= 500

    def _failed(self, request: Request) -> None:
        if request.url.endswith("/status"):
            self.polls += 1
            self.polls_failed += 1

    def line(self) -> str:
        return (
            f"pages: {len(self.sids)} reached their results by themselves; status polls {self.polls}, "
            f"{self.polls_failed} of them failed; reloads needed {self.reloads}"
        )

    def close(self) -> None:
        for context in self.contexts:
            context.close()


def _fill_in_page(page: Page, photo: Path) -> str:
    """Photos, about you, one style, the two confirmations: the employee's own pages."""
    session_id = re.search(r"/sessions/([0-9a-f-]{36})", page.url)
    assert session_id is not None, page.url
    page.set_input_files("#photo-input", [str(photo)])
    expect(page.locator(".photo.ok")).to_have_count(1, timeout=120_000)
    page.fill("#full_name", "Browser Person")
    page.locator("label.chip", has_text="Female").click()
    page.locator("label.chip", has_text="Brown").click()
    page.locator("label.option", has_text="Without glasses").click()
    expect(page.locator('[data-save-state="info"]')).to_have_text("✓ Saved")
    page.locator(".backdrop", has_text="Deep navy").locator("label.chip", has_text="Business shirt").click()
    expect(page.locator('[data-save-state="styles"]')).to_have_text("✓ Saved")
    page.locator("#agree_terms").click()
    page.locator("#best_photos").click()
    return session_id.group(1)
