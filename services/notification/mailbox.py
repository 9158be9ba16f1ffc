"""The embedded mode's mailbox: the .eml files the file transport wrote under var/mail.

    for item in list_mail(settings.mail_dir): print(item.received, item.to, item.subject)
    mail = read_mail(settings.mail_dir, item.key)      # MailNotFound for anything else

Keys are the file names the transport gives (``<message id>.<template>``), checked against that
pattern before any path is built: no other file can be read through them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import cast

KEY = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.[a-z_]{1,40}$")


class MailNotFound(LookupError):
    pass


@dataclass(frozen=True)
class MailItem:
    key: str
    received: datetime
    sender: str
    to: str
    subject: str


@dataclass(frozen=True)
class Mail:
    item: MailItem
    text: str
    html: str


def _parse(path: Path) -> EmailMessage:
    with path.open("rb") as f:
        return cast(EmailMessage, BytesParser(policy=policy.default).parse(f))


def _item(path: Path, message: EmailMessage) -> MailItem:
    return MailItem(
        key=path.stem,
        received=datetime.fromtimestamp(path.stat().st_mtime, UTC),
        sender=str(message.get("From", "")),
        to=str(message.get("To", "")),
        subject=str(message.get("Subject", "")),
    )


def list_mail(folder: Path, limit: int = 200) -> list[MailItem]:
    """The newest ``limit`` e-mails, newest first."""
    if not folder.is_dir():
        return []
    paths = [p for p in folder.glob("*.eml") if KEY.match(p.stem)]
    paths.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return [_item(p, _parse(p)) for p in paths[:limit]]


def read_mail(folder: Path, key: str) -> Mail:
    if not KEY.match(key):
        raise MailNotFound(key)
    path = folder / f"{key}.eml"
    if not path.is_file():
        raise MailNotFound(key)
    message = _parse(path)
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    text = text_part.get_content() if text_part is not None else ""
    html = html_part.get_content() if html_part is not None else ""
    return Mail(_item(path, message), text, html)
