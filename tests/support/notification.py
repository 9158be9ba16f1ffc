"""Helpers for the notification tests (unit, integration and e2e): a real SMTP server (aiosmtpd)
and a real HTTP webhook receiver on loopback ports, a clock the tests move by hand, and a few rows
to notify about. Holds no tests itself.

    with SmtpSink() as smtp:                      # started on a free 127.0.0.1 port
        settings = settings.replace(SMTP_URL=smtp.url)
        ...
        wait_for(lambda: len(smtp.messages) == 1, "one e-mail")
"""

from __future__ import annotations

import email
import hashlib
import hmac
import json
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from aiosmtpd.controller import Controller

from libs.contracts import (
    MEMBER_INVITED,
    SESSION_APPROVED,
    SESSION_COMPLETED,
    SESSION_FAILED,
    SESSION_REJECTED,
    SESSION_SUBMITTED,
    Message,
    new_message,
)
from libs.db import Database, HeadshotSession, Organization, Role, User


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        if address in self.sink.refuse:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.sink.lock:
            if self.sink.busy > 0:
                self.sink.busy -= 1
                return "451 4.3.0 Try again later"
            parsed = email.message_from_bytes(envelope.content, policy=default_policy)
            self.sink.messages.append(cast(EmailMessage, parsed))
        return "250 OK"


class SmtpSink:
    """A real SMTP server in this process. ``refuse``: addresses answered 550; ``busy``: how many
    next messages are answered 451. ``start()``/``stop()`` may be called again (same port)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[EmailMessage] = []
        self.refuse: set[str] = set()
        self.busy = 0
        self.lock = threading.Lock()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> SmtpSink:
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    """A real HTTP server on loopback recording every POST. ``status``: what it answers;
    ``hold``: while set, requests wait for it to clear (a slow endpoint)."""

    status: int = 200
    answer: bytes = b'{"ok":true}'
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    slow: bool = False
    tls: tuple[str, str] | None = None  # (certificate, key) files: serve HTTPS

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if receiver.slow:
                    receiver.release.wait(30)
                receiver.received.append(Received(dict(self.headers.items()), body))
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(receiver.answer)))
                self.end_headers()
                self.wfile.write(receiver.answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/headshots"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def self_signed(folder: Any, host: str) -> tuple[str, str]:
    """A certificate for ``host`` (and its key), made with the openssl command."""
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            "2",
            "-subj",
            f"/CN={host}",
            "-addext",
            f"subjectAltName=DNS:{host}",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


class ManualClock:
    """``clock()`` returns a time the test moves with ``advance``."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 29, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


@dataclass
class People:
    org_id: str
    user_id: str
    session_id: str
    admin_id: str
    other_org_id: str


def seed_people(
    db: Database,
    *,
    webhook_url: str | None = None,
    secret: str | None = "whsec-test",
    display_name: str = "Bea Employee",
    email_address: str = "bea@acme.example",
    manual_review: bool = True,
) -> People:
    """An organization (with its webhook), an employee with a submitted session, an admin, and
    a second organization."""
    with db.uow(all_orgs=True) as uow:
        s = uow.session
        org = Organization(
            name="Acme Corporation",
            slug=f"acme-{free_port()}",
            package_id="executive",
            manual_review=manual_review,
            webhook_url=webhook_url,
            webhook_secret=secret,
        )
        other = Organization(name="Globex", slug=f"globex-{free_port()}", package_id="starter")
        s.add_all([org, other])
        s.flush()
        user = User(org_id=org.id, email=email_address, display_name=display_name, role=Role.EMPLOYEE.value)
        admin = User(
            org_id=org.id, email="admin@acme.example", display_name="Alex Admin", role=Role.ORG_ADMIN.value
        )
        s.add_all([user, admin])
        s.flush()
        hs = HeadshotSession(
            org_id=org.id,
            user_id=user.id,
            state="submitted",
            package_id="executive",
            full_name="Bea Q. Person",
        )
        s.add(hs)
        uow.commit()
        return People(org.id, user.id, hs.id, admin.id, other.id)


def session_events(p: People) -> dict[str, Message]:
    """One message of every event notification consumes, for the people above."""
    ids = {"org_id": p.org_id, "session_id": p.session_id}
    return {
        "submitted": new_message(
            SESSION_SUBMITTED,
            **ids,
            package="executive",
            format="portrait",
            styles=["navy:suit", "grey:shirt"],
            photo_count=4,
        ),
        "approved": new_message(SESSION_APPROVED, **ids, auto=False, reviewer_id=p.admin_id),
        "rejected": new_message(
            SESSION_REJECTED, **ids, reviewer_id=p.admin_id, reason="Please add a photo without sunglasses."
        ),
        "completed": new_message(SESSION_COMPLETED, **ids, headshot_count=12),
        "failed": new_message(SESSION_FAILED, **ids, stage="training", reason="RuntimeError: out of memory"),
        "invited": new_message(
            MEMBER_INVITED, org_id=p.org_id, session_id=None, user_id=p.user_id, invited_by=p.admin_id
        ),
    }


def verify_headshots_webhook(
    secret: str, headers: dict[str, str], raw_body: bytes, tolerance: int = 300
) -> bool:
    """The receiver's check exactly as docs/notification.md shows it."""
    timestamp = headers.get("X-Headshots-Timestamp", "")
    signature = headers.get("X-Headshots-Signature", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance:
        return False  # missing, or too old / too far in the future: a replay
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def body_json(received: Received) -> Any:
    return json.loads(received.body)


def run_handler(handlers: dict[Any, Any], message: Message, db: Database, deps: dict[str, Any]) -> None:
    """What the consumer does around a handler: one tenant-scoped unit of work, committed after."""
    import inspect

    handler = handlers[message.event]
    wanted = set(list(inspect.signature(handler).parameters)[1:])
    with db.uow(org_id=message.org_id) as uow:
        available = {"uow": uow, "publish": uow.add_message, **deps}
        handler(message, **{k: v for k, v in available.items() if k in wanted})
        uow.commit()
