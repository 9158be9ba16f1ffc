"""E-mails as data: which template, for whom, with what, turned into one multipart message.

    email = Email("ready", Recipient(...), {"results_url": "…"})
    message = compose(settings, email, message_id="4f7c…")   # text/plain + text/html, same words

Each kind has ``templates/email/<template>.txt`` and ``.html`` (Jinja, autoescaped HTML). Both
receive the recipient's greeting name and organization name plus the kind's own values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from libs.db import utcnow
from libs.settings import Settings

TEMPLATES = Path(__file__).parent / "templates" / "email"

SUBJECTS = {
    "submitted": "We have your photos",
    "rejected": "Your photos need another look",
    "ready": "Your headshots are ready",
    "failed": "We could not finish your headshots",
    "invite": "{org_name} invites you to get your headshots",
}


class BadAddress(ValueError):
    """An address no server would accept (empty, no @, line breaks)."""


@dataclass(frozen=True)
class Recipient:
    user_id: str
    email: str
    name: str  # the person's display name, "" when unknown (the e-mail then greets neutrally)
    org_name: str


@dataclass(frozen=True)
class Email:
    template: str
    recipient: Recipient
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        return SUBJECTS[self.template].format(org_name=self.recipient.org_name)


@cache
def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,  # a missing value is a bug to see in tests, not a blank in an e-mail
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(email: Email) -> tuple[str, str]:
    """(plain text, HTML) of an e-mail."""
    context = {
        "name": email.recipient.name.strip(),
        "org_name": email.recipient.org_name,
        "subject": email.subject,
        **email.values,
    }
    env = _env()
    text = env.get_template(f"{email.template}.txt").render(context)
    html = env.get_template(f"{email.template}.html").render(context)
    return text, html


def address(raw: str, name: str) -> Address:
    raw = raw.strip()
    local, _, domain = raw.rpartition("@")
    if not local or not domain or any(c in raw for c in '\r\n <>,;"') or len(raw) > 320:
        raise BadAddress(f"{raw!r} is not an e-mail address")
    # Display names come from people: no line breaks can reach a header.
    return Address(display_name=" ".join(name.split()), username=local, domain=domain)


def compose(settings: Settings, email: Email, *, message_id: str) -> EmailMessage:
    """The message for ``email``; its Message-ID is derived from the event, so a message sent
    twice (see docs/notification.md, "the one window") is recognisably the same message."""
    text, html = render(email)
    sender_domain = parseaddr(settings.MAIL_FROM)[1].rpartition("@")[2] or "localhost"
    message = EmailMessage()
    message["From"] = settings.MAIL_FROM
    message["To"] = address(email.recipient.email, email.recipient.name)
    message["Subject"] = email.subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = f"<{message_id}.{email.template}@{sender_domain}>"
    message["Auto-Submitted"] = "auto-generated"  # no out-of-office replies to a robot
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message
