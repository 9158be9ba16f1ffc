"""Pages of the mail viewer. Who may look: support staff always; anyone on the embedded mode's own
machine (file transport and a loopback HOST), where the point is to see what the product would send.
Everyone else gets 404, as for any page they may not see.

    GET /              the e-mails under var/mail, newest first, and the sends that failed or wait
    GET /<key>         one e-mail: its headers, its HTML in a sandboxed frame, its plain text
    GET /<key>/html    the HTML part alone (the frame's source), with a CSP of its own
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, render_template
from sqlalchemy import select

from libs.db import EmailSend, Role
from libs.settings import Settings
from libs.web import current_user, get_db, get_settings, not_found
from services.notification.ledger import FAILED, PENDING, SENDING
from services.notification.mailbox import list_mail, read_mail

bp = Blueprint("mail", __name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

# The e-mail's HTML keeps its own <style> (as mail clients need) but may run and load nothing.
EMAIL_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'self'"
)


def local_demo(settings: Settings) -> bool:
    return not settings.SMTP_URL and settings.HOST in LOOPBACK_HOSTS


def _require_reader() -> None:
    user = current_user()
    if user is not None and user.role == Role.SUPPORT.value:
        return
    if local_demo(get_settings()):
        return
    raise not_found("page")


@bp.before_request
def _guard() -> None:
    _require_reader()


@bp.after_request
def _private(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "private, no-store")
    response.headers.setdefault("Referrer-Policy", "no-referrer")  # e-mails hold sign-in links
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


@bp.get("/")
def index() -> Any:
    settings = get_settings()
    with get_db().session(all_orgs=True) as db_session:
        attention = db_session.scalars(
            select(EmailSend)
            .where(EmailSend.status.in_((FAILED, PENDING, SENDING)))
            .order_by(EmailSend.updated_at.desc())
            .limit(100)
        ).all()
    return render_template(
        "mail/index.html",
        mails=list_mail(settings.mail_dir) if not settings.SMTP_URL else None,
        attention=attention,
        smtp=bool(settings.SMTP_URL),
    )


@bp.get("/<key>")
def read(key: str) -> Any:
    return render_template("mail/read.html", mail=read_mail(get_settings().mail_dir, key))


@bp.get("/<key>/html")
def read_html(key: str) -> Response:
    mail = read_mail(get_settings().mail_dir, key)
    if not mail.html:
        raise not_found("HTML part")
    response = Response(mail.html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = EMAIL_CSP
    return response
