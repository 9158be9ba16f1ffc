"""The org API under /api/v1/org: members, invites, sessions and review decisions, settings.

Authenticate with an org API key (``Authorization: Bearer hsk_…``) or the console's cookie plus
its csrf_token as ``X-CSRF-Token`` on writes. Example::

    curl -H "Authorization: Bearer hsk_…" -X POST https://…/review/api/v1/org/sessions/a51b…/reject \\
         -H "Content-Type: application/json" -d '{"reason": "Please add a photo without sunglasses."}'
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from flask import Flask, g, request
from flask.views import MethodView

from libs.catalog import default_catalog
from libs.db import HeadshotSession, User, WebhookDelivery, webhooks
from libs.privacy import finish_erasures
from libs.web import get_blobs, get_db, get_settings
from libs.web.api import ErrorSchema
from libs.web.api import ServiceBlueprint as Blueprint
from services.review import apikeys, decisions, deliveries, invites, members, orgsettings, privacy
from services.review.access import current_reviewer
from services.review.csvimport import Invitee, parse
from services.review.decisions import Approve, Reject
from services.review.errors import Invalid, NotFound, NotSignedIn
from services.review.members import TeamQuery
from services.review.orgsettings import ChangeSettings
from services.review.presenters import session_view
from services.review.schemas import (
    BulkApproveOutSchema,
    BulkApproveSchema,
    DeleteDataSchema,
    DeliveriesSchema,
    DeliverySchema,
    InvitesOutSchema,
    InvitesSchema,
    MemberSchema,
    OrgSettingsSchema,
    ReceiptsSchema,
    RejectSchema,
    ReviewSessionSchema,
    TeamQuerySchema,
    TeamSchema,
    WebhookSecretSchema,
)

PREFIX = "/api/v1/org"
members_blp = Blueprint(
    "org_members", __name__, url_prefix=f"{PREFIX}/members", description="Members and invites."
)
invites_blp = Blueprint("org_invites", __name__, url_prefix=f"{PREFIX}/invites", description="Invite people.")
sessions_blp = Blueprint(
    "org_sessions", __name__, url_prefix=f"{PREFIX}/sessions", description="Sessions and review decisions."
)
settings_blp = Blueprint(
    "org_settings_api", __name__, url_prefix=f"{PREFIX}/settings", description="Settings."
)
BLUEPRINTS = (members_blp, invites_blp, sessions_blp, settings_blp)


def install_key_auth(app: Flask) -> None:
    """A bearer key on an org API request is checked first; a bad or revoked key is 401."""

    @app.before_request
    def _api_key() -> None:
        header = request.headers.get("Authorization", "")
        if not request.path.startswith(PREFIX) or not header:
            return
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise NotSignedIn("Send the key as 'Authorization: Bearer <key>'.")
        g.api_key_reviewer = apikeys.authenticate(get_db(), key.strip())


def _member_body(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.display_name,
        "role": user.role,
        "active": user.active,
    }


# --- members -------------------------------------------------------------------------------------
@members_blp.route("")
class Members(MethodView):
    @members_blp.arguments(TeamQuerySchema, location="query")
    @members_blp.response(200, TeamSchema)
    @members_blp.alt_response(401, schema=ErrorSchema, description="No valid key or sign-in.")
    @members_blp.alt_response(403, schema=ErrorSchema, description="Not an org admin.")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Members with their status, last activity and headshot count (50 a page)."""
        reviewer = current_reviewer()
        with get_db().uow(org_id=reviewer.org_id) as uow:
            page = members.team_page(uow, reviewer.org_id, TeamQuery(args["q"], args["status"], args["page"]))
        return {
            "members": [asdict(r) for r in page.rows],
            "counts": page.counts,
            "total": page.total,
            "page": page.page,
            "pages": page.pages,
        }


@members_blp.route("/<user_id>/resend")
class Resend(MethodView):
    @members_blp.response(200, MemberSchema)
    @members_blp.alt_response(404, schema=ErrorSchema, description="No such member in this org.")
    @members_blp.alt_response(409, schema=ErrorSchema, description="The member is deactivated.")
    def post(self, user_id: str) -> dict[str, Any]:
        """Send the invite e-mail again (a new expiring link)."""
        reviewer = current_reviewer()
        with get_db().uow(org_id=reviewer.org_id) as uow:
            user = invites.resend(uow, reviewer, user_id)
            uow.commit()
            return _member_body(user)


@members_blp.route("/<user_id>/deactivate")
class Deactivate(MethodView):
    @members_blp.response(200, MemberSchema)
    @members_blp.alt_response(404, schema=ErrorSchema, description="No such member in this org.")
    @members_blp.alt_response(409, schema=ErrorSchema, description="You cannot deactivate yourself.")
    def post(self, user_id: str) -> dict[str, Any]:
        """Their links stop signing in; their data stays until deleted."""
        reviewer = current_reviewer()
        with get_db().uow(org_id=reviewer.org_id) as uow:
            user = invites.deactivate(uow, reviewer, user_id)
            uow.commit()
            return _member_body(user)


@members_blp.route("/<user_id>/delete-data")
class DeleteData(MethodView):
    @members_blp.arguments(DeleteDataSchema)
    @members_blp.response(200, ReceiptsSchema)
    @members_blp.alt_response(404, schema=ErrorSchema, description="No such member in this org.")
    @members_blp.alt_response(409, schema=ErrorSchema, description="Your own account.")
    @members_blp.alt_response(422, schema=ErrorSchema, description="confirm must be true.")
    def post(self, payload: dict[str, Any], user_id: str) -> dict[str, Any]:
        """Delete all of a member's data (every session: photos, headshots, person models, answers)
        and erase their account (address and name pseudonymised, links and API keys stop working);
        answers the receipts."""
        if not payload["confirm"]:
            raise Invalid("Please confirm the deletion.", {"confirm": ["Please confirm the deletion."]})
        reviewer = current_reviewer()
        with get_db().uow(org_id=reviewer.org_id) as uow:
            erasures = privacy.delete_member_data(uow, reviewer, user_id, get_settings().mail_dir)
            uow.commit()
        finish_erasures(erasures, get_blobs(), get_settings())
        return {"receipts": [privacy.receipt_body(e.receipt) for e in erasures]}


@members_blp.route("/deletion-receipts")
class Receipts(MethodView):
    @members_blp.response(200, ReceiptsSchema)
    def get(self) -> dict[str, Any]:
        """The organization's deletion receipts, newest first: kinds and counts, when, why, by whom."""
        reviewer = current_reviewer()
        with get_db().uow(org_id=reviewer.org_id) as uow:
            return {"receipts": privacy.org_receipts(uow)}


# --- invites -------------------------------------------------------------------------------------
@invites_blp.route("")
class Invites(MethodView):
    @invites_blp.arguments(InvitesSchema)
    @invites_blp.response(201, InvitesOutSchema)
    @invites_blp.alt_response(
        422, schema=ErrorSchema, description="Invalid entries, by position; none imported."
    )
    def post(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Invite people (``{"invites": [{"email": "a@b.example", "name": "A B"}]}``): all or none."""
        reviewer = current_reviewer()
        # The same rules as the console's list: one line per entry, numbered from 1.
        text = "\n".join(_csv_line(i["email"], i["name"]) for i in payload["invites"])
        people, errors = parse(text)
        if errors:
            raise Invalid(
                f"Nothing was imported: {len(errors)} entr(y/ies) need fixing.",
                {"invites": {str(e.line): [e.message] for e in errors}},
            )
        with get_db().uow(org_id=reviewer.org_id) as uow:
            result = invites.invite(uow, reviewer, [Invitee(p.line, p.email, p.name) for p in people])
            uow.commit()
            return {
                "invited": [_member_body(u) for u in result.invited],
                "already_members": result.already_members,
            }


def _csv_line(email: str, name: str) -> str:
    quote = '"' + name.replace('"', '""') + '"'
    return f"{email.replace(',', ' ')},{quote}" if name else email.replace(",", " ")


# --- sessions and decisions ------------------------------------------------------------------------
def _session_body(uow: Any, hs: HeadshotSession) -> dict[str, Any]:
    user = uow.session.get(User, hs.user_id)
    if user is None:
        raise NotFound("No such session.")
    return session_view(uow, hs, user, default_catalog())


@sessions_blp.route("/in-review")
class InReview(MethodView):
    @sessions_blp.response(200, ReviewSessionSchema(many=True))
    def get(self) -> list[dict[str, Any]]:
        """Sessions waiting for a decision, oldest first."""
        reviewer = current_reviewer()
        cat = default_catalog()
        with get_db().uow(org_id=reviewer.org_id) as uow:
            return [session_view(uow, hs, user, cat) for hs, user in decisions.in_review(uow)]


@sessions_blp.route("/<session_id>")
class OneSession(MethodView):
    @sessions_blp.response(200, ReviewSessionSchema)
    @sessions_blp.alt_response(404, schema=ErrorSchema, description="No such session in this org.")
    def get(self, session_id: str) -> dict[str, Any]:
        reviewer = current_reviewer()
        with get_db().uow(org_id=reviewer.org_id) as uow:
            return _session_body(uow, decisions.find_session(uow, session_id))


@sessions_blp.route("/<session_id>/approve")
class ApproveSession(MethodView):
    @sessions_blp.response(200, ReviewSessionSchema)
    @sessions_blp.alt_response(404, schema=ErrorSchema, description="No such session in this org.")
    @sessions_blp.alt_response(409, schema=ErrorSchema, description="already_decided.")
    def post(self, session_id: str) -> dict[str, Any]:
        """Approve: the session is queued and its headshots are made."""
        reviewer = current_reviewer()
        with get_db().uow(org_id=reviewer.org_id) as uow:
            hs = decisions.approve(uow, reviewer, Approve(session_id))
            uow.commit()
            return _session_body(uow, hs)


@sessions_blp.route("/<session_id>/reject")
class RejectSession(MethodView):
    @sessions_blp.arguments(RejectSchema)
    @sessions_blp.response(200, ReviewSessionSchema)
    @sessions_blp.alt_response(404, schema=ErrorSchema, description="No such session in this org.")
    @sessions_blp.alt_response(409, schema=ErrorSchema, description="already_decided.")
    def post(self, payload: dict[str, Any], session_id: str) -> dict[str, Any]:
        """Send the session back to the person with a reason they will read."""
        reviewer = current_reviewer()
        with get_db().uow(org_id=reviewer.org_id) as uow:
            hs = decisions.reject(uow, reviewer, Reject(session_id, payload["reason"]))
            uow.commit()
            return _session_body(uow, hs)


@sessions_blp.route("/approve")
class BulkApprove(MethodView):
    @sessions_blp.arguments(BulkApproveSchema)
    @sessions_blp.response(200, BulkApproveOutSchema)
    def post(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Approve several sessions; those already decided are listed as skipped."""
        reviewer = current_reviewer()
        with get_db().uow(org_id=reviewer.org_id) as uow:
            result = decisions.approve_many(uow, reviewer, payload["session_ids"])
            uow.commit()
        return {"approved": result.approved, "skipped": result.skipped}


# --- settings --------------------------------------------------------------------------------------
@settings_blp.route("")
class Settings(MethodView):
    @settings_blp.response(200, OrgSettingsSchema)
    def get(self) -> dict[str, Any]:
        reviewer = current_reviewer()
        with get_db().uow(org_id=reviewer.org_id) as uow:
            return orgsettings.snapshot(orgsettings.load_org(uow, reviewer.org_id))

    @settings_blp.arguments(OrgSettingsSchema)
    @settings_blp.response(200, OrgSettingsSchema)
    @settings_blp.alt_response(422, schema=ErrorSchema, description="Invalid settings.")
    def put(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Replace the settings (every change is audited)."""
        reviewer = current_reviewer()
        with get_db().uow(org_id=reviewer.org_id) as uow:
            orgsettings.change_settings(uow, reviewer, ChangeSettings(**payload), default_catalog())
            uow.commit()
            return orgsettings.snapshot(orgsettings.load_org(uow, reviewer.org_id))


@settings_blp.route("/webhook-secret")
class WebhookSecret(MethodView):
    @settings_blp.response(201, WebhookSecretSchema)
    def post(self) -> dict[str, Any]:
        """Create or rotate the webhook signing secret; the old one stops working. Shown only here."""
        reviewer = current_reviewer()
        with get_db().uow(org_id=reviewer.org_id) as uow:
            secret = orgsettings.rotate_webhook_secret(uow, reviewer)
            uow.commit()
        return {"webhook_secret": secret}


@settings_blp.route("/webhook-test")
class WebhookTest(MethodView):
    @settings_blp.response(202, DeliverySchema)
    @settings_blp.alt_response(
        409, schema=ErrorSchema, description="No endpoint or secret yet, or a test is already on its way."
    )
    def post(self) -> dict[str, Any]:
        """Send a signed ``webhook.tested`` event to the webhook endpoint through the delivery ledger;
        follow its outcome in ``GET settings/webhook-deliveries``."""
        reviewer = current_reviewer()
        with get_db().uow(org_id=reviewer.org_id) as uow:
            delivery = deliveries.send_test_event(uow, reviewer, datetime.now(UTC))
            uow.commit()
            return _delivery_body(delivery)


@settings_blp.route("/webhook-deliveries")
class WebhookDeliveries(MethodView):
    @settings_blp.response(200, DeliveriesSchema)
    def get(self) -> dict[str, Any]:
        """The latest webhook deliveries, newest first: event, status, attempts, last error."""
        reviewer = current_reviewer()
        with get_db().uow(org_id=reviewer.org_id) as uow:
            return {"deliveries": [_delivery_body(d) for d in webhooks.recent_deliveries(uow)]}


def _delivery_body(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        name: getattr(delivery, name)
        for name in (
            "id",
            "event",
            "session_id",
            "status",
            "attempts",
            "last_error",
            "created_at",
            "delivered_at",
        )
    }
