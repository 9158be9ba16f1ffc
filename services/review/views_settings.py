"""Settings page: review and renewal, allowed styles, retention, webhook (secret shown once),
org API keys (shown once, revocable), and the audit log of every change."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from libs.catalog import default_catalog
from libs.db import MAX_ROW_ID, webhooks
from libs.web import get_db
from services.review import apikeys, deliveries, orgsettings
from services.review.access import current_reviewer
from services.review.errors import Conflict, Invalid
from services.review.orgsettings import ChangeSettings

bp = Blueprint("org_settings", __name__)


def settings_form(form: MultiDict[str, str]) -> ChangeSettings:
    """The settings form as a command: unticked boxes are absent; a bad number is a field error."""
    raw_days = form.get("retention_days", "").strip()
    try:
        days = int(raw_days)
    except ValueError:
        raise Invalid(
            "Please fix the marked fields.", {"retention_days": ["A whole number of days."]}
        ) from None
    return ChangeSettings(
        manual_review=form.get("manual_review") == "on",
        renewal=form.get("renewal") == "on",
        allowed_styles=form.getlist("allowed_styles"),
        retention_days=days,
        webhook_url=form.get("webhook_url", "").strip() or None,
    )


def render_settings(status: int = 200, **extra: Any) -> Any:
    reviewer = current_reviewer()
    cat = default_catalog()
    form = extra.pop("values", None)
    # Rendered inside the unit of work: closing it rolls back, which expires the loaded rows.
    with get_db().uow(org_id=reviewer.org_id) as uow:
        org = orgsettings.load_org(uow, reviewer.org_id)
        everything, preselected = orgsettings.styles_on_offer(org, cat)
        saved = orgsettings.snapshot(org)
        entries = orgsettings.audit_entries(uow, reviewer.org_id)
        if form is None:
            shown = {**saved, "allowed": set(saved["allowed_styles"] or everything) | set(preselected)}
        else:  # a refused form shows what was sent, for fixing
            shown = {
                "manual_review": form.get("manual_review") == "on",
                "renewal": form.get("renewal") == "on",
                "allowed": set(form.getlist("allowed_styles")),
                "retention_days": form.get("retention_days", ""),
                "webhook_url": form.get("webhook_url", ""),
            }
        context = {
            "shown": shown,
            "has_secret": org.webhook_secret is not None,
            "has_webhook": bool(org.webhook_url),
            "styles": [cat.style(s) for s in everything],
            "preselected": set(preselected),
            "keys": apikeys.list_keys(uow),
            "deliveries": webhooks.recent_deliveries(uow),
            "entries": entries,
            "actors": orgsettings.actor_names(uow, entries),
            "errors": {},
            **extra,
        }
        return render_template("settings.html", **context), status


@bp.get("/settings")
def settings_page() -> Any:
    return render_settings()


@bp.post("/settings")
def save_settings() -> Any:
    reviewer = current_reviewer()
    try:
        command = settings_form(request.form)
        with get_db().uow(org_id=reviewer.org_id) as uow:
            changed = orgsettings.change_settings(uow, reviewer, command, default_catalog())
            uow.commit()
    except Invalid as exc:
        return render_settings(422, errors=exc.fields, values=request.form)
    flash("Settings saved." if changed else "Nothing changed.", "ok")
    return redirect(url_for("org_settings.settings_page"), 303)


@bp.post("/settings/webhook-secret")
def rotate_secret() -> Any:
    reviewer = current_reviewer()
    with get_db().uow(org_id=reviewer.org_id) as uow:
        secret = orgsettings.rotate_webhook_secret(uow, reviewer)
        uow.commit()
    # Rendered, not redirected: the secret must never travel in the (signed, not encrypted) cookie.
    return render_settings(new_secret=secret)


@bp.post("/settings/api-keys")
def create_key() -> Any:
    reviewer = current_reviewer()
    try:
        with get_db().uow(org_id=reviewer.org_id) as uow:
            key, plain = apikeys.create_key(uow, reviewer, request.form.get("name", ""))
            uow.commit()
    except Invalid as exc:
        return render_settings(422, key_errors=exc.fields)
    return render_settings(new_key=plain, new_key_name=key.name)


@bp.post("/settings/api-keys/<key_id>/revoke")
def revoke_key(key_id: str) -> Any:
    reviewer = current_reviewer()
    with get_db().uow(org_id=reviewer.org_id) as uow:
        key = apikeys.revoke_key(uow, reviewer, key_id)
        uow.commit()
    flash(f"API key “{key.name}” revoked: it no longer works.", "ok")
    return redirect(url_for("org_settings.settings_page") + "#api-keys", 303)


@bp.post(f"/settings/webhook-deliveries/<int(max={MAX_ROW_ID}):delivery_id>/resend")
def resend_delivery(delivery_id: int) -> Any:
    """Send a webhook delivery again: its retry schedule starts over, due now (audited)."""
    reviewer = current_reviewer()
    with get_db().uow(org_id=reviewer.org_id) as uow:
        delivery = deliveries.resend(uow, reviewer, delivery_id, datetime.now(UTC))
        uow.commit()
    flash(f"The {delivery.event} webhook will be sent again now.", "ok")
    return redirect(url_for("org_settings.settings_page") + "#webhook-deliveries", 303)


@bp.post("/settings/webhook-test")
def send_test_event() -> Any:
    """A signed test event to the organization's endpoint; its outcome shows in the deliveries list."""
    reviewer = current_reviewer()
    try:
        with get_db().uow(org_id=reviewer.org_id) as uow:
            deliveries.send_test_event(uow, reviewer, datetime.now(UTC))
            uow.commit()
    except Conflict as exc:
        return render_settings(409, test_error=exc.message)
    flash("A signed test event is on its way to your endpoint: reload to see how it went.", "ok")
    return redirect(url_for("org_settings.settings_page") + "#webhook-deliveries", 303)
