"""What the notification service owed people and organizations, and how each try went: e-mails
(``email_sends`` + ``email_attempts``) and webhook deliveries (``webhook_deliveries`` +
``webhook_attempts``), read across organizations for the Mail page, its JSON twin and a session's
timeline. Nothing here writes.

    page = find_emails(db_session, DeliveryFilter(status="failed"), mail_dir=settings.mail_dir)
    for e in page.rows: print(e.recipient, e.subject, e.status, [a.outcome for a in e.tries])
    emails, hooks = session_deliveries(db_session, hs.id, mail_dir)   # for the timeline

The ledger holds ids; the recipient's address is read from the person's account — the send's
user (the notification service records the person it built the e-mail for), or the session's owner
for session e-mails recorded before it did — and not shown once the session's personal info is
erased (support sees what the session page shows). The ``.eml`` file of the embedded mode, when
there is one, is named by the transport's key ``<message id>.<template>``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session, aliased

from libs.db import (
    EmailAttempt,
    EmailSend,
    HeadshotSession,
    Organization,
    User,
    WebhookAttempt,
    WebhookDelivery,
)
from services.ops.queries import paged

PAGE_SIZE = 50
EMAIL_STATUSES = ("sending", "pending", "sent", "failed")
WEBHOOK_STATUSES = ("pending", "delivered", "failed")
Q = TypeVar("Q", bound=Select)  # type: ignore[type-arg]


@dataclass(frozen=True)
class DeliveryFilter:
    status: str | None = None
    kind: str | None = None  # an e-mail template ("ready") or a webhook event ("session.completed")
    org_id: str | None = None
    session: str | None = None  # a session id, or its start
    page: int = 1


@dataclass(frozen=True)
class Try:
    """One attempt: when, how long, the outcome, and what came back (answer) or why not (error)."""

    number: int | None
    at: datetime
    latency_ms: float
    outcome: str
    status_code: int | None = None
    answer: str | None = None  # the SMTP server's reply, or the first KB of the endpoint's answer
    error: str | None = None


@dataclass(frozen=True)
class EmailRow:
    id: int
    org_id: str
    org_name: str
    session_id: str | None
    user_id: str | None
    recipient: str | None
    subject: str | None
    kind: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    preview_key: str | None  # the .eml file's key when the embedded mode wrote one
    tries: tuple[Try, ...] = ()


@dataclass(frozen=True)
class WebhookRow:
    id: int
    org_id: str
    org_name: str
    session_id: str | None
    kind: str  # the event
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    tries: tuple[Try, ...] = ()


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    total: int
    page: int
    pages: int
    counts: dict[str, int]


def _filtered(query: Q, model: type[EmailSend] | type[WebhookDelivery], f: DeliveryFilter, kind: Any) -> Q:
    if f.status:
        query = query.where(model.status == f.status)
    if f.kind:
        query = query.where(kind == f.kind)
    if f.org_id:
        query = query.where(model.org_id == f.org_id)
    if f.session:
        query = query.where(model.session_id.startswith(f.session.strip().lower(), autoescape=True))
    return query


def _counts(
    db_session: Session, model: Any, f: DeliveryFilter, kind: Any, statuses: tuple[str, ...]
) -> dict[str, int]:
    query = _filtered(
        select(model.status, func.count()).group_by(model.status),
        model,
        DeliveryFilter(kind=f.kind, org_id=f.org_id, session=f.session),
        kind,
    )
    counts = dict.fromkeys(statuses, 0)
    counts.update({status: n for status, n in db_session.execute(query).all()})
    return counts


def _email_tries(db_session: Session, ids: list[int]) -> dict[int, tuple[Try, ...]]:
    tries: dict[int, list[Try]] = defaultdict(list)
    if ids:
        for a in db_session.scalars(
            select(EmailAttempt).where(EmailAttempt.send_id.in_(ids)).order_by(EmailAttempt.id)
        ):
            tries[a.send_id].append(
                Try(a.attempt, a.started_at, a.latency_ms, a.outcome, None, a.reply, a.error)
            )
    return {k: tuple(v) for k, v in tries.items()}


def _webhook_tries(db_session: Session, ids: list[int]) -> dict[int, tuple[Try, ...]]:
    tries: dict[int, list[Try]] = defaultdict(list)
    if ids:
        for a in db_session.scalars(
            select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)).order_by(WebhookAttempt.id)
        ):
            outcome = "delivered" if a.error is None else "failed"
            tries[a.delivery_id].append(
                Try(
                    a.attempt,
                    a.attempted_at,
                    a.latency_ms,
                    outcome,
                    a.status_code,
                    a.response_excerpt,
                    a.error,
                )
            )
    return {k: tuple(v) for k, v in tries.items()}


def _preview_key(mail_dir: Path | None, send: EmailSend) -> str | None:
    key = f"{send.message_id}.{send.template}"
    return key if mail_dir is not None and (mail_dir / f"{key}.eml").is_file() else None


def _emails(db_session: Session, found: list[Any], mail_dir: Path | None) -> list[EmailRow]:
    tries = _email_tries(db_session, [send.id for send, *_ in found])
    return [
        EmailRow(
            id=send.id,
            org_id=send.org_id,
            org_name=org_name or "",
            session_id=send.session_id,
            user_id=user_id,
            recipient=address,
            subject=send.subject,
            kind=send.template,
            status=send.status,
            attempts=send.attempts,
            last_error=send.last_error,
            created_at=send.created_at,
            sent_at=send.sent_at,
            preview_key=_preview_key(mail_dir, send),
            tries=tries.get(send.id, ()),
        )
        for send, org_name, user_id, address in found
    ]


def _webhooks(db_session: Session, found: list[Any]) -> list[WebhookRow]:
    tries = _webhook_tries(db_session, [d.id for d, _ in found])
    return [
        WebhookRow(
            id=d.id,
            org_id=d.org_id,
            org_name=org_name or "",
            session_id=d.session_id,
            kind=d.event,
            status=d.status,
            attempts=d.attempts,
            last_error=d.last_error,
            created_at=d.created_at,
            next_attempt_at=d.next_attempt_at,
            delivered_at=d.delivered_at,
            tries=tries.get(d.id, ()),
        )
        for d, org_name in found
    ]


def _email_query() -> Select[EmailSend, str, str, str]:
    # The send names its recipient; session e-mails recorded before the notification service did
    # so (their events carry no user id) name the person through the session's owner.
    person, owner = aliased(User), aliased(User)
    return (
        select(
            EmailSend,
            Organization.name,
            func.coalesce(EmailSend.user_id, HeadshotSession.user_id),
            # Hidden once the session's personal info is erased, as the session page hides it.
            case(
                (HeadshotSession.personal_info_erased_at.is_not(None), None),
                else_=func.coalesce(person.email, owner.email),
            ),
        )
        .outerjoin(Organization, Organization.id == EmailSend.org_id)
        .outerjoin(person, person.id == EmailSend.user_id)
        .outerjoin(HeadshotSession, HeadshotSession.id == EmailSend.session_id)
        .outerjoin(owner, owner.id == HeadshotSession.user_id)
    )


def _webhook_query() -> Select[WebhookDelivery, str]:
    return select(WebhookDelivery, Organization.name).outerjoin(
        Organization, Organization.id == WebhookDelivery.org_id
    )


def find_emails(db_session: Session, f: DeliveryFilter, *, mail_dir: Path | None) -> Page:
    """E-mails across organizations, newest first, with their attempts and counts per status."""
    query = _filtered(_email_query(), EmailSend, f, EmailSend.template)
    order = (EmailSend.created_at.desc(), EmailSend.id.desc())
    found, total, page, pages = paged(db_session, query, f.page, PAGE_SIZE, order)
    counts = _counts(db_session, EmailSend, f, EmailSend.template, EMAIL_STATUSES)
    return Page(_emails(db_session, found, mail_dir), total, page, pages, counts)


def find_webhooks(db_session: Session, f: DeliveryFilter) -> Page:
    """Webhook deliveries across organizations, newest first, with their attempts."""
    query = _filtered(_webhook_query(), WebhookDelivery, f, WebhookDelivery.event)
    order = (WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
    found, total, page, pages = paged(db_session, query, f.page, PAGE_SIZE, order)
    counts = _counts(db_session, WebhookDelivery, f, WebhookDelivery.event, WEBHOOK_STATUSES)
    return Page(_webhooks(db_session, found), total, page, pages, counts)


def session_deliveries(
    db_session: Session, session_id: str, mail_dir: Path | None
) -> tuple[list[EmailRow], list[WebhookRow]]:
    """Every e-mail and webhook delivery of one session, oldest first."""
    emails = db_session.execute(
        _email_query().where(EmailSend.session_id == session_id).order_by(EmailSend.id)
    ).all()
    hooks = db_session.execute(
        _webhook_query().where(WebhookDelivery.session_id == session_id).order_by(WebhookDelivery.id)
    ).all()
    return _emails(db_session, list(emails), mail_dir), _webhooks(db_session, list(hooks))


def kinds(db_session: Session) -> tuple[list[str], list[str]]:
    """The e-mail templates and webhook events seen so far (the Mail page's kind filter)."""
    templates = db_session.scalars(select(EmailSend.template).distinct().order_by(EmailSend.template))
    events = db_session.scalars(select(WebhookDelivery.event).distinct().order_by(WebhookDelivery.event))
    return list(templates), list(events)
