"""Where e-mails go: an SMTP server (distributed mode) or .eml files under var/mail (embedded mode).

    transport = make_transport(settings)
    reply = transport.send(message, key="4f7c….ready")   # "250 2.0.0 Ok: queued as 4Xb…"
    # raises TransientMailError or PermanentMailError (their text is the server's answer)

The two errors are what the mailer needs to know: a transient failure (the server is down, busy,
4xx) is worth retrying later and the message was certainly not accepted; a permanent one (5xx, an
address the server refuses) will fail the same way every time.
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
import ssl
import tempfile
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from libs.settings import Settings

log = logging.getLogger("headshots.notification.transport")


class MailError(Exception):
    pass


class TransientMailError(MailError):
    """Not delivered, worth trying again later (connection refused, timeout, 4xx)."""


class PermanentMailError(MailError):
    """Not delivered and never will be as it stands (5xx, an address refused)."""


REPLY_CHARS = 1024  # what is kept of a server's answer


class Transport(Protocol):
    def send(self, message: EmailMessage, *, key: str) -> str:
        """Deliver ``message``; returns what the server answered to it (for the attempt record)."""
        ...


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str  # "plain", "starttls" or "tls"
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> SmtpConfig:
        parts = urlsplit(url)
        schemes = {"smtp": ("plain", 25), "smtp+starttls": ("starttls", 587), "smtps": ("tls", 465)}
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(
                f"SMTP_URL must look like smtp[s]://[user:pw@]host[:port], not {parts.scheme}://…"
            )
        security, default_port = schemes[parts.scheme]
        return cls(
            host=parts.hostname,
            port=parts.port or default_port,
            security=security,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


class _KeepsDataReply:
    """smtplib checks the answer to DATA and drops it; this keeps it (the queue id support quotes)."""

    data_reply = ""

    def data(self, msg: Any) -> tuple[int, bytes]:
        code, text = super().data(msg)  # type: ignore[misc]
        self.data_reply = f"{code} {_text(text)}"
        return code, text


class _SMTP(_KeepsDataReply, smtplib.SMTP):
    pass


class _SMTPS(_KeepsDataReply, smtplib.SMTP_SSL):
    pass


class SmtpTransport:
    def __init__(self, config: SmtpConfig, timeout: float) -> None:
        self.config = config
        self.timeout = timeout

    def send(self, message: EmailMessage, *, key: str) -> str:
        c = self.config
        try:
            client: _SMTP | _SMTPS
            if c.security == "tls":
                client = _SMTPS(c.host, c.port, timeout=self.timeout, context=ssl.create_default_context())
            else:
                client = _SMTP(c.host, c.port, timeout=self.timeout)
            with client:
                if c.security == "starttls":
                    client.starttls(context=ssl.create_default_context())
                if c.username:
                    client.login(c.username, c.password or "")
                refused = client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise _by_codes(list(exc.recipients.values())) from exc
        except smtplib.SMTPAuthenticationError as exc:
            # Our configuration, not this message: retry (and dead-letter) rather than fail it for good.
            raise TransientMailError(f"SMTP login refused: {exc.smtp_code} {_text(exc.smtp_error)}") from exc
        except smtplib.SMTPResponseException as exc:
            raise _by_codes([(exc.smtp_code, exc.smtp_error)]) from exc
        except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timeout, TLS, disconnected
            raise TransientMailError(f"SMTP server {c.host}:{c.port} unavailable: {exc!r}") from exc
        if refused:  # several recipients and some refused: we only ever send to one
            raise _by_codes(list(refused.values()))
        return _ADDRESS.sub("<address>", client.data_reply)[:REPLY_CHARS]


_ADDRESS = re.compile(r"[^\s<>'\"]+@[^\s<>'\"]+")


def _text(raw: bytes | str) -> str:
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def _by_codes(answers: list[tuple[int, bytes | str]]) -> MailError:
    # The server's words, never the address (the ledger and its page keep no personal info).
    detail = "SMTP server answered " + "; ".join(
        f"{code} {_ADDRESS.sub('<address>', _text(text))}" for code, text in answers
    )
    if answers and all(500 <= code < 600 for code, _ in answers):
        return PermanentMailError(detail)
    return TransientMailError(detail)


class FileTransport:
    """Writes each e-mail to ``<folder>/<key>.eml``. The name is deterministic, so writing the same
    e-mail again replaces the file instead of adding a second one."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, message: EmailMessage, *, key: str) -> str:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            # Written whole, then renamed: a reader never sees half an e-mail.
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
            with os.fdopen(fd, "wb") as out:
                out.write(bytes(message))
            os.replace(tmp, self.folder / f"{key}.eml")
        except OSError as exc:
            raise TransientMailError(f"could not write to {self.folder}: {exc}") from exc
        return f"written as {key}.eml"


def make_transport(settings: Settings) -> Transport:
    if settings.SMTP_URL:
        return SmtpTransport(SmtpConfig.parse(settings.SMTP_URL), settings.SMTP_TIMEOUT_SECONDS)
    return FileTransport(settings.mail_dir)
