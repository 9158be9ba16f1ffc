"""Signing in to the console with an admin's invite link, the header's context, signing out."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, url_for
from sqlalchemy.exc import SQLAlchemyError

from libs.db import Organization, Role, User
from libs.settings import Settings
from libs.web import TokenInvalid, get_db, get_settings, invite_url, login, logout, read_invite
from services.review.access import signed_in_admin

bp = Blueprint("console", __name__)

INVITE_PATH = "/review/invite/"


def admin_invite_url(settings: Settings, user: User) -> str:
    """The console's sign-in link for an org admin (expires after INVITE_TTL_SECONDS)."""
    return invite_url(settings, user, path=INVITE_PATH)


@bp.app_context_processor
def _header() -> dict[str, Any]:
    try:
        admin = signed_in_admin()
        org = None
        if admin is not None:
            with get_db().session(org_id=admin.org_id) as s:
                org = s.get(Organization, admin.org_id)
    except SQLAlchemyError:
        return {"admin": None, "org": None}  # error pages must render during an outage
    return {"admin": admin, "org": org}


@bp.get("/")
def index() -> Any:
    if signed_in_admin() is None:
        return render_template("signed_out.html"), 200
    return redirect(url_for("queue.queue_page"))


@bp.get("/invite/<token>")
def invite(token: str) -> Any:
    """Sign in with a signed, expiring link; only active org admins get in."""
    try:
        claims = read_invite(get_settings(), token)
    except TokenInvalid as exc:
        return render_template("invite_invalid.html", expired=exc.expired), 410 if exc.expired else 400
    with get_db().session(all_orgs=True) as s:
        user = s.get(User, str(claims.get("user_id", "")))
    if user is None or not user.active or user.org_id is None or user.org_id != claims.get("org_id"):
        return render_template("invite_invalid.html", expired=False), 400
    if user.role != Role.ORG_ADMIN.value:
        return render_template("invite_invalid.html", expired=False, not_admin=True), 403
    login(user)
    return redirect(url_for("queue.queue_page"), 303)  # the token leaves the address bar


@bp.post("/sign-out")
def sign_out() -> Any:
    logout()
    return redirect(url_for("console.index"), 303)
