"""The organization's settings as the admin changes them; every change is audited with who, when,
what it was before and what it is after. Secrets never enter the audit log."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from libs.catalog import Catalog
from libs.db import AuditLog, Organization, UnitOfWork, User
from services.review.audit import audit
from services.review.decisions import Reviewer
from services.review.errors import Invalid, NotFound

MAX_RETENTION_DAYS = 3650


@dataclass(frozen=True)
class ChangeSettings:
    manual_review: bool
    renewal: bool
    allowed_styles: list[str]
    retention_days: int
    webhook_url: str | None


def load_org(uow: UnitOfWork, org_id: str) -> Organization:
    org = uow.session.get(Organization, org_id)
    if org is None:
        raise NotFound("No such organization.")
    return org


def snapshot(org: Organization) -> dict[str, Any]:
    return {
        "manual_review": org.manual_review,
        "renewal": org.renewal,
        "allowed_styles": list(org.allowed_styles or []),
        "retention_days": org.retention_days,
        "webhook_url": org.webhook_url,
    }


def styles_on_offer(org: Organization, catalog: Catalog) -> tuple[list[str], list[str]]:
    """(every catalog style, the package's pre-selected ones, always included)."""
    return [s.id for s in catalog.all_styles()], list(catalog.package(org.package_id).preselected)


def _validate(command: ChangeSettings, org: Organization, catalog: Catalog) -> list[str]:
    everything, preselected = styles_on_offer(org, catalog)
    if not command.allowed_styles:
        return []  # the whole catalog, as stored
    errors: dict[str, list[str]] = {}
    unknown = [s for s in command.allowed_styles if s not in everything]
    if unknown:
        errors["allowed_styles"] = [f"Unknown style(s): {', '.join(unknown[:5])}."]
    elif not [s for s in command.allowed_styles if s not in preselected]:
        errors["allowed_styles"] = ["Leave at least one style for people to choose."]
    if not 1 <= command.retention_days <= MAX_RETENTION_DAYS:
        errors["retention_days"] = [f"Between 1 and {MAX_RETENTION_DAYS} days."]
    if command.webhook_url:
        parts = urlsplit(command.webhook_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or len(command.webhook_url) > 500:
            errors["webhook_url"] = ["An http(s) address, e.g. https://hooks.example.com/headshots."]
    if errors:
        raise Invalid("Please fix the marked fields.", errors)
    chosen = set(command.allowed_styles) | set(preselected)
    # Every style ticked means the whole catalog, including styles added to it later.
    return [] if chosen >= set(everything) else [s for s in everything if s in chosen]


def change_settings(
    uow: UnitOfWork, reviewer: Reviewer, command: ChangeSettings, catalog: Catalog
) -> dict[str, Any]:
    """Apply the change; returns what changed (``{field: {"before", "after"}}``, empty if nothing)."""
    org = load_org(uow, reviewer.org_id)
    allowed = _validate(command, org, catalog)
    before = snapshot(org)
    org.manual_review, org.renewal = command.manual_review, command.renewal
    org.allowed_styles = allowed
    org.retention_days = command.retention_days
    org.webhook_url = command.webhook_url or None
    after = snapshot(org)
    changed = [k for k in before if before[k] != after[k]]
    if changed:
        audit(
            uow,
            reviewer,
            "settings.change",
            org.id,
            before={k: before[k] for k in changed},
            after={k: after[k] for k in changed},
        )
    return {k: {"before": before[k], "after": after[k]} for k in changed}


def rotate_webhook_secret(uow: UnitOfWork, reviewer: Reviewer) -> str:
    """A new signing secret for the org's webhooks: returned once, to be shown once."""
    org = load_org(uow, reviewer.org_id)
    had = org.webhook_secret is not None
    org.webhook_secret = secrets.token_urlsafe(32)
    audit(
        uow,
        reviewer,
        "settings.webhook_secret",
        org.id,
        before={"webhook_secret": "set" if had else None},
        after={"webhook_secret": "rotated" if had else "set"},
    )
    return org.webhook_secret


def audit_entries(uow: UnitOfWork, org_id: str, limit: int = 50) -> list[AuditLog]:
    return list(
        uow.session.scalars(
            select(AuditLog).where(AuditLog.org_id == org_id).order_by(AuditLog.id.desc()).limit(limit)
        )
    )


def actor_names(uow: UnitOfWork, entries: list[AuditLog]) -> dict[str, str]:
    ids = {e.actor_id for e in entries if e.actor_id}
    if not ids:
        return {}
    return {u.id: u.email for u in uow.session.scalars(select(User).where(User.id.in_(ids)))}
