"""marshmallow schemas of the org API (requests are validated by them; the OpenAPI document is
built from them)."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from libs.contracts import WEBHOOK_TESTED
from services.review.csvimport import MAX_NAME
from services.review.decisions import MAX_REASON
from services.review.members import STATUSES
from services.review.orgsettings import MAX_RETENTION_DAYS


class _Strict(Schema):
    class Meta:
        unknown = RAISE


# --- members and invites -----------------------------------------------------------------------
class TeamQuerySchema(_Strict):
    q = fields.String(load_default="", validate=validate.Length(max=200))
    status = fields.String(load_default="", validate=validate.OneOf(["", *STATUSES]))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))


class MemberSchema(Schema):
    id = fields.String()
    email = fields.String()
    name = fields.String()
    role = fields.String()
    active = fields.Boolean()
    status = fields.String(metadata={"enum": list(STATUSES)})
    state = fields.String(allow_none=True, metadata={"description": "Latest session's state, if any."})
    last_activity = fields.AwareDateTime()
    headshots = fields.Integer()


class TeamSchema(Schema):
    members = fields.List(fields.Nested(MemberSchema))
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    total = fields.Integer()
    page = fields.Integer()
    pages = fields.Integer()


class InviteeSchema(_Strict):
    email = fields.String(required=True, validate=validate.Length(min=3, max=320))
    name = fields.String(load_default="", validate=validate.Length(max=MAX_NAME))


class InvitesSchema(_Strict):
    invites = fields.List(
        fields.Nested(InviteeSchema), required=True, validate=validate.Length(min=1, max=100_000)
    )


class InvitesOutSchema(Schema):
    invited = fields.List(fields.Nested(MemberSchema))
    already_members = fields.List(fields.String())


# --- sessions and decisions --------------------------------------------------------------------
class StyleRefSchema(Schema):
    id = fields.String()
    label = fields.String()


class ReviewSessionSchema(Schema):
    id = fields.String()
    state = fields.String()
    stage = fields.String()
    member = fields.Dict(keys=fields.String(), values=fields.String())
    personal_info = fields.Dict(keys=fields.String(), values=fields.String(allow_none=True))
    chosen_styles = fields.List(fields.Nested(StyleRefSchema))
    preselected_styles = fields.List(fields.Nested(StyleRefSchema))
    format = fields.Nested(StyleRefSchema, allow_none=True)
    photo_ids = fields.List(fields.String())
    submitted_at = fields.AwareDateTime(allow_none=True)
    review_reason = fields.String(allow_none=True)


class RejectSchema(_Strict):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=MAX_REASON))


class BulkApproveSchema(_Strict):
    session_ids = fields.List(fields.String(), required=True, validate=validate.Length(min=1, max=500))


class BulkApproveOutSchema(Schema):
    approved = fields.List(fields.String())
    skipped = fields.List(fields.String(), metadata={"description": "Already decided or not found."})


# --- settings ----------------------------------------------------------------------------------
class OrgSettingsSchema(_Strict):
    manual_review = fields.Boolean(required=True)
    renewal = fields.Boolean(required=True)
    allowed_styles = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "Style ids; [] in answers means the whole catalog."},
    )
    retention_days = fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_RETENTION_DAYS))
    webhook_url = fields.String(required=True, allow_none=True, validate=validate.Length(max=500))


class WebhookSecretSchema(Schema):
    webhook_secret = fields.String(metadata={"description": "Shown once: store it now."})


class DeliverySchema(Schema):
    id = fields.Integer()
    event = fields.String(metadata={"example": WEBHOOK_TESTED.routing_key})
    session_id = fields.String(allow_none=True)
    status = fields.String(metadata={"enum": ["pending", "delivered", "failed"]})
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    created_at = fields.AwareDateTime()
    delivered_at = fields.AwareDateTime(allow_none=True)


class DeliveriesSchema(Schema):
    deliveries = fields.List(fields.Nested(DeliverySchema))


class DeleteDataSchema(_Strict):
    confirm = fields.Boolean(required=True, metadata={"description": "Must be true: deletion is for good."})


class ReceiptSchema(Schema):
    id = fields.Integer()
    session_id = fields.String(allow_none=True)
    user_id = fields.String(allow_none=True)
    reason = fields.String(metadata={"description": "completion, retention or request"})
    actor = fields.String(metadata={"description": "the user id who asked, or system"})
    kinds = fields.Dict(
        keys=fields.String(), values=fields.Integer(), metadata={"description": "kind: objects"}
    )
    created_at = fields.DateTime()


class ReceiptsSchema(Schema):
    receipts = fields.List(fields.Nested(ReceiptSchema))
