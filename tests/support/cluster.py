"""Driving the whole product, every service its own process (services/cluster.py), the way people
do: an org admin invites through the org API, the employee opens the link from the invite e-mail
and submits through the intake API, the admin approves through the org API. Plus what the system
tests check afterwards (headshots, e-mails, webhooks, dead letters, erased personal info).

    with running_cluster(env, tmp) as cluster:
        product = Product(cluster, db, smtp, hooks)
        org = product.create_org("Acme", manual_review=True)
        person = product.invite(org, "ada@acme.example")
        session_id = person.submit("Ada Lovelace")
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from libs.db import Database, Headshot, HeadshotSession, Organization, OrgApiKey, PersonModel, Role, User
from libs.messaging.testing import wait_for
from services.cluster import Cluster, layout
from tests.support.intake import astronaut_png
from tests.support.notification import SmtpSink, WebhookReceiver, verify_headshots_webhook

T = TypeVar("T")
PACKAGE = "starter"  # the fewest headshots a session: 1 chosen style + 1 pre-selected, 2 each
STYLE = "navy:shirt"
HEADSHOTS_PER_SESSION = 4
LINK = re.compile(r"https?://\S+/invite/\S+")
# What every process of a system test runs with: small renders, quick retries, no waiting on
# stuck-session checks. Only settings: the product's code paths are the production ones.
FAST = {
    "RENDER_SIZE": "96x64",
    "RETRY_DELAY_MS": "300",
    "PUBLISH_TIMEOUT": "5",
    "HEARTBEAT": "10",
    "OUTBOX_POLL_SECONDS": "0.1",
    "WEBHOOK_POLL_SECONDS": "0.3",
    "WEBHOOK_ALLOW_PRIVATE": "true",
    "SMTP_TIMEOUT_SECONDS": "5",
    "LOG_LEVEL": "WARNING",
    "SECRET_KEY": "system-test",
    "HF_HUB_OFFLINE": "1",
}


@contextmanager
def running_cluster(env: dict[str, str], log_dir: Path, **counts: int) -> Iterator[Cluster]:
    cluster = Cluster({**FAST, **env}, parts=layout(**counts), port=0, log_dir=log_dir)
    try:
        cluster.start()
        yield cluster
    finally:
        codes = cluster.stop()
        unclean = {k: v for k, v in codes.items() if v not in (0, -9)}
        assert not unclean, f"processes that did not stop cleanly: {unclean} (logs in {log_dir})"


def retrying(call: Callable[[], requests.Response], ok: tuple[int, ...] = (200, 201), timeout: float = 120):
    """An HTTP call that a restarting server may answer with 5xx or refuse: tried again until it
    answers one of ``ok`` (anything else in 4xx is a test failure at once)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            answer = call()
        except requests.RequestException as exc:
            last = exc
        else:
            if answer.status_code in ok:
                return answer
            assert answer.status_code >= 500, f"{answer.status_code}: {answer.text[:500]}"
            last = f"{answer.status_code}: {answer.text[:300]}"
        time.sleep(0.5)
    raise AssertionError(f"no answer in {ok} within {timeout:g} s; last: {last}")


@dataclass
class Org:
    id: str
    name: str
    api_key: str
    webhook_secret: str
    manual_review: bool
    renewal: bool


@dataclass
class Person:
    email: str
    base: str
    http: requests.Session = field(default_factory=requests.Session)
    sessions: list[str] = field(default_factory=list)

    def sign_in(self, link: str) -> None:
        retrying(lambda: self.http.get(link, timeout=30))

    def current(self) -> dict[str, Any]:
        return retrying(lambda: self.http.get(f"{self.base}/api/v1/sessions/current", timeout=30)).json()

    def submit(self, full_name: str, *, new: bool = False) -> str:
        """Photos, personal info, a style, submit: through the intake API. Returns the session id."""
        current = self.current()
        headers = {"X-CSRF-Token": current["csrf_token"]}
        if new:  # renewal: a fresh session after a completed one
            current = retrying(
                lambda: self.http.post(f"{self.base}/api/v1/sessions/new", headers=headers, timeout=30)
            ).json()
        sid = current["id"]
        api = f"{self.base}/api/v1/sessions/{sid}"
        photo = astronaut_png()
        if not current.get("photos"):
            retrying(lambda: self.http.post(f"{api}/photos", files={"photo": ("me.png", photo)},
                                            headers=headers, timeout=60))  # fmt: skip
        info = {"full_name": full_name, "gender": "female", "eye_color": "brown", "glasses": "no_glasses"}
        retrying(lambda: self.http.put(f"{api}/info", json=info, headers=headers, timeout=30))
        styles = {"styles": [STYLE], "format": "standard"}
        retrying(lambda: self.http.put(f"{api}/styles", json=styles, headers=headers, timeout=30))
        body = {"agree_terms": True, "best_photos": True}
        retrying(lambda: self.http.post(f"{api}/submit", json=body, headers=headers, timeout=30))
        self.sessions.append(sid)
        return sid

    def status(self, sid: str) -> dict[str, Any]:
        url = f"{self.base}/api/v1/sessions/{sid}/status"
        return retrying(lambda: self.http.get(url, timeout=30)).json()


class Product:
    """The product as its users reach it, plus the database for what the checks count."""

    def __init__(self, cluster: Cluster, db: Database, smtp: SmtpSink, hooks: WebhookReceiver) -> None:
        self.cluster, self.db, self.smtp, self.hooks = cluster, db, smtp, hooks
        self.intake = cluster.url("intake").rstrip("/")
        self.review = cluster.url("review").rstrip("/")
        self.orgs: dict[str, Org] = {}
        self.people: list[Person] = []

    # --- set-up ----------------------------------------------------------------------------------
    def create_org(self, name: str, *, manual_review: bool = False, renewal: bool = False) -> Org:
        """An organization with its admin and an org API key (as the console would create them)."""
        key, secret = "hsk_" + secrets.token_urlsafe(32), secrets.token_hex(16)
        with self.db.uow(all_orgs=True) as uow:
            org = Organization(
                name=name,
                slug=f"{name.lower()}-{uuid.uuid4().hex[:6]}",
                package_id=PACKAGE,
                manual_review=manual_review,
                renewal=renewal,
                webhook_url=self.hooks.url,
                webhook_secret=secret,
            )
            uow.session.add(org)
            uow.session.flush()
            admin = User(org_id=org.id, email=f"admin@{org.slug}.example", role=Role.ORG_ADMIN.value)
            uow.session.add(admin)
            uow.session.flush()
            uow.session.add(
                OrgApiKey(org_id=org.id, name="system test", prefix=key[:12],
                          key_hash=hashlib.sha256(key.encode()).hexdigest(), created_by=admin.id)
            )  # fmt: skip
            uow.commit()
            made = Org(org.id, name, key, secret, manual_review, renewal)
        self.orgs[made.id] = made
        return made

    def org_api(self, org: Org, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {org.api_key}"}
        return requests.request(
            method, f"{self.review}/api/v1/org{path}", headers=headers, timeout=30, **kwargs
        )

    def invite(self, org: Org, emails: list[str]) -> list[str]:
        """The admin invites people through the org API; each gets an e-mail with a sign-in link."""
        body = {"invites": [{"email": e, "name": e.split("@")[0].title()} for e in emails]}
        retrying(lambda: self.org_api(org, "POST", "/invites", json=body), ok=(201,))
        return emails

    def invite_link(self, email: str, timeout: float = 180) -> str:
        def link() -> str | None:
            for m in list(self.smtp.messages):
                if m["To"] and email in str(m["To"]) and "invites you" in str(m["Subject"]):
                    found = LINK.search(m.get_body(("plain",)).get_content())  # type: ignore[union-attr]
                    return found.group(0) if found else None
            return None

        wait_for(lambda: link() is not None, f"the invite e-mail to {email}", timeout=timeout)
        found = link()
        assert found is not None
        return found

    def person(self, email: str) -> Person:
        person = Person(email, self.intake)
        person.sign_in(self.invite_link(email))
        self.people.append(person)
        return person

    def approve_when_in_review(self, org: Org, sid: str, timeout: float = 300) -> None:
        wait_for(lambda: self.state(sid) == "in_review", f"{sid} in review", timeout=timeout)
        answer = retrying(lambda: self.org_api(org, "POST", f"/sessions/{sid}/approve"), ok=(200, 201, 409))
        if answer.status_code == 409:
            # Only right when a try before went through and its answer was lost: PostgreSQL closing
            # the connection after the commit (a restart) leaves the server a 500 to say.
            assert self.state(sid) not in ("in_review", "rejected"), f"{sid}: {answer.text[:300]}"

    # --- what happened ---------------------------------------------------------------------------
    def read(self, query: Callable[[Any], T], timeout: float = 120) -> T:
        """A read of the database that waits out a PostgreSQL restart (the fault run makes them)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.db.session(all_orgs=True) as s:
                    return query(s)
            except OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def state(self, sid: str) -> str:
        return str(
            self.read(lambda s: s.scalar(select(HeadshotSession.state).where(HeadshotSession.id == sid)))
        )

    def states(self, sids: list[str]) -> Counter[str]:
        rows = self.read(
            lambda s: s.execute(select(HeadshotSession.state).where(HeadshotSession.id.in_(sids))).all()
        )
        return Counter(r[0] for r in rows)

    def count_in(self, states: tuple[str, ...]) -> int:
        return int(
            self.read(
                lambda s: s.scalar(
                    select(func.count()).select_from(HeadshotSession).where(HeadshotSession.state.in_(states))
                )
            )
        )

    def count_submitted(self) -> int:
        """Sessions past onboarding (submitted, in any state since)."""
        return int(
            self.read(
                lambda s: s.scalar(
                    select(func.count())
                    .select_from(HeadshotSession)
                    .where(HeadshotSession.state != "onboarding")
                )
            )
        )

    def wait_completed(self, sids: list[str], timeout: float = 600) -> None:
        def done() -> bool:
            states = self.states(sids)
            assert states["failed"] == 0, f"a session failed: {states}"
            return states["completed"] == len(sids)

        wait_for(done, f"{len(sids)} sessions completed", timeout=timeout)

    def headshot_counts(self, sids: list[str]) -> dict[str, int]:
        rows = self.read(
            lambda s: s.execute(
                select(Headshot.session_id, func.count(func.distinct(Headshot.blob_key)))
                .where(Headshot.session_id.in_(sids))
                .group_by(Headshot.session_id)
            ).all()
        )
        return {sid: n for sid, n in rows}

    def not_erased(self, sids: list[str]) -> list[str]:
        with self.db.session(all_orgs=True) as s:
            return list(
                s.scalars(
                    select(HeadshotSession.id).where(
                        HeadshotSession.id.in_(sids),
                        (HeadshotSession.full_name.is_not(None))
                        | HeadshotSession.personal_info_erased_at.is_(None),
                    )
                )
            )

    def retired_models(self, sid: str) -> list[bool]:
        with self.db.session(all_orgs=True) as s:
            return [
                m.retired_at is not None
                for m in s.scalars(select(PersonModel).where(PersonModel.session_id == sid))
            ]

    def mail_counts(self) -> Counter[tuple[str, str]]:
        """(recipient, subject) of every e-mail the SMTP server received."""
        return Counter((str(m["To"]), str(m["Subject"])) for m in list(self.smtp.messages))

    def webhook_counts(self) -> tuple[Counter[tuple[str, str]], int]:
        """(event, session) of every webhook received, and how many failed their signature check."""
        secrets_by_org = {o.id: o.webhook_secret for o in self.orgs.values()}
        seen: Counter[tuple[str, str]] = Counter()
        unsigned = 0
        for r in list(self.hooks.received):
            body = json.loads(r.body)
            secret = secrets_by_org.get(body.get("org_id", ""), "")
            if not verify_headshots_webhook(secret, r.headers, r.body):
                unsigned += 1
            seen[(str(body.get("type")), str(body.get("session_id")))] += 1
        return seen, unsigned
