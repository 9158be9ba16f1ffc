"""Ops pages about the machinery: queues (with the last hour's chart), dead letters (look, replay,
discard: each audited), workers (heartbeats), e-mails and webhook deliveries, and the audit log."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from marshmallow import ValidationError
from sqlalchemy import select

from libs.db import AuditLog, WorkerHeartbeat
from libs.messaging import (
    BrokerUnavailable,
    dead_letter_queues,
    discard_dead_letters,
    list_dead_letters,
    queue_depths,
    replay_dead_letters,
)
from libs.web import ApiError, get_db, get_settings
from services import WEB_MOUNTS
from services.ops.access import require_support
from services.ops.charts import line_chart
from services.ops.deliveries import DeliveryFilter, find_emails, find_webhooks, kinds
from services.ops.queries import organizations
from services.ops.queues import queue_stats
from services.ops.sampler import depth_history, throughput_history
from services.ops.schemas import (
    AuditFilterSchema,
    DeliveryFilterSchema,
    EmailFilterSchema,
    WebhookFilterSchema,
)

bp = Blueprint("ops_infra", __name__)
log = logging.getLogger("headshots.ops")

AUDIT_PAGE = 50


def now() -> datetime:
    return datetime.now(UTC)


def _broker_down(exc: Exception) -> ApiError:
    return ApiError(503, "broker_unavailable", f"The message broker does not answer: {exc}")


@bp.get("/queues")
def queues() -> Any:
    settings = get_settings()
    try:
        stats = queue_stats(settings)
    except BrokerUnavailable as exc:
        raise _broker_down(exc) from None
    end = now()
    start = end - timedelta(hours=1)
    history = depth_history(get_db(), since=start)
    handled = throughput_history(get_db(), since=start, end=end)
    work = {q: points for q, points in history.items() if not q.endswith((".retry", ".dead"))}
    dead = {q: points for q, points in history.items() if q.endswith(".dead")}
    return render_template(
        "queues.html",
        stats=stats,
        source="management API"
        if settings.RABBITMQ_MANAGEMENT_URL and not settings.embedded_broker
        else "passive declares",
        embedded=settings.embedded_broker,
        work_chart=line_chart(work, start=start, end=end),
        dead_chart=line_chart(dead, start=start, end=end),
        throughput_chart=line_chart(handled, start=start, end=end),
        samples=sum(len(p) for p in history.values()),
    )


# --- dead letters ---------------------------------------------------------------------------------
def _dead_queue(queue: str) -> str:
    if queue not in dead_letter_queues(get_settings()):
        raise ApiError(404, "not_found", "No such dead-letter queue.")
    return queue


@bp.get("/dead-letters")
def dead_letters() -> Any:
    settings = get_settings()
    try:
        depths = queue_depths(settings)
    except BrokerUnavailable as exc:
        raise _broker_down(exc) from None
    rows = [(q, depths.get(q, 0)) for q in dead_letter_queues(settings)]
    return render_template("dead_letters.html", rows=rows, total=sum(n for _, n in rows))


@bp.get("/dead-letters/<queue>")
def dead_letter_queue(queue: str) -> Any:
    queue = _dead_queue(queue)
    letters = list_dead_letters(get_settings(), queue, limit=100)
    return render_template("dead_letter_queue.html", queue=queue, letters=letters)


def _settle(queue: str, action: str) -> Any:
    user = require_support()
    queue = _dead_queue(queue)
    message_id = (request.form.get("message_id") or "").strip() or None
    run = replay_dead_letters if action == "replayed" else discard_dead_letters
    count = run(get_settings(), queue, message_id=message_id)
    with get_db().uow(all_orgs=True) as uow:
        uow.session.add(
            AuditLog(
                actor_id=user.id,
                action=f"dead_letter.{action}",
                target=queue,
                detail={"message_id": message_id or "all", "count": count},
            )
        )
        uow.commit()
    log.info("%s %s %d dead letter(s) of %s", user.email, action, count, queue)
    if count:
        flash(f"{action.capitalize()} {count} message{'s' if count != 1 else ''}.", "ok")
    else:
        flash("Nothing to do: that message is no longer there.", "error")
    return redirect(url_for("ops_infra.dead_letter_queue", queue=queue), 303)


@bp.post("/dead-letters/<queue>/replay")
def replay(queue: str) -> Any:
    return _settle(queue, "replayed")


@bp.post("/dead-letters/<queue>/discard")
def discard(queue: str) -> Any:
    return _settle(queue, "discarded")


# --- workers, mail, audit --------------------------------------------------------------------------
@bp.get("/workers")
def workers() -> Any:
    settings = get_settings()
    current = now()
    with get_db().session(all_orgs=True) as db_session:
        beats = list(
            db_session.scalars(select(WorkerHeartbeat).order_by(WorkerHeartbeat.service, WorkerHeartbeat.id))
        )
    gone_after = timedelta(seconds=settings.WORKER_GONE_SECONDS)
    rows = [(b, current - b.last_seen_at > gone_after) for b in beats]
    return render_template("workers.html", rows=rows, now=current, gone_after=settings.WORKER_GONE_SECONDS)


def _deliveries_page(schema: DeliveryFilterSchema, template: str, find: Any, **extra: Any) -> Any:
    """A Mail or Webhooks page: the filter form (per-field errors, 400) and the matching rows."""
    errors: dict[str, Any] = {}
    try:
        f = schema.load(request.args)
    except ValidationError as exc:
        errors, f = exc.normalized_messages(), DeliveryFilter()
    with get_db().session(all_orgs=True) as db_session:
        page = find(db_session, f) if not errors else None
        orgs = organizations(db_session)
        templates, events = kinds(db_session)
    body = render_template(
        template,
        page=page,
        f=f,
        errors=errors,
        orgs=orgs,
        statuses=schema.statuses,
        kinds=templates if isinstance(schema, EmailFilterSchema) else events,
        args=request.args.to_dict(),
        **extra,
    )
    return body, 400 if errors else 200


@bp.get("/mail")
def mail() -> Any:
    """Every e-mail the notification service recorded, with each try; the embedded mode's .eml
    file, when there is one, opens in the mail viewer (``WEB_MOUNTS["notification"]``)."""
    settings = get_settings()
    return _deliveries_page(
        EmailFilterSchema(),
        "mail.html",
        lambda db_session, f: find_emails(db_session, f, mail_dir=settings.mail_dir),
        smtp=bool(settings.SMTP_URL),
        folder=str(settings.mail_dir),
        viewer=f"{settings.public_url}{WEB_MOUNTS['notification']}/",
    )


@bp.get("/webhooks")
def webhooks() -> Any:
    """Every webhook delivery, with each try's status code, latency and the endpoint's answer."""
    return _deliveries_page(WebhookFilterSchema(), "webhooks.html", find_webhooks)


@bp.get("/audit")
def audit() -> Any:
    args = request.args
    try:
        page = AuditFilterSchema().load(args)["page"]
    except ValidationError as exc:
        messages = exc.normalized_messages()
        raise ApiError(400, "bad_filter", " ".join(messages["page"]), fields=messages) from None
    query = select(AuditLog)
    if args.get("action"):
        query = query.where(AuditLog.action.startswith(args["action"].strip(), autoescape=True))
    if args.get("org"):
        query = query.where(AuditLog.org_id == args["org"])
    if args.get("actor"):
        query = query.where(AuditLog.actor_id == args["actor"].strip())
    if args.get("target"):
        query = query.where(AuditLog.target == args["target"].strip())
    with get_db().session(all_orgs=True) as db_session:
        rows = list(
            db_session.scalars(
                query.order_by(AuditLog.id.desc()).limit(AUDIT_PAGE + 1).offset((page - 1) * AUDIT_PAGE)
            )
        )
        orgs = organizations(db_session)
    return render_template(
        "audit.html",
        rows=rows[:AUDIT_PAGE],
        more=len(rows) > AUDIT_PAGE,
        page=page,
        orgs=orgs,
        args=args.to_dict(),
    )
