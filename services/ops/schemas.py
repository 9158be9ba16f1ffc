"""Marshmallow schemas of the ops pages and API: the sessions and deliveries filters, the fail
form, and the JSON shapes of sessions, timelines, e-mails and webhook deliveries (the OpenAPI
document is built from them)."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load, validate, validates

from libs.contracts import SessionState
from libs.web import csrf_token
from services.ops.deliveries import EMAIL_STATUSES, WEBHOOK_STATUSES, DeliveryFilter
from services.ops.queries import SessionFilter

STATES = [s.value for s in SessionState]

# The highest page number any list of the ops pages and API takes.
PAGE_LIMIT = 100_000


def _page() -> fields.Integer:
    """The ``page`` of a list: 1 to PAGE_LIMIT (beyond it the offset would outgrow the database's integers)."""
    return fields.Integer(
        load_default=1,
        validate=validate.Range(
            min=1, max=PAGE_LIMIT, error=f"The page must be a number from 1 to {PAGE_LIMIT:,}."
        ),
        error_messages={"invalid": "The page must be a number."},
    )


class FilterSchema(Schema):
    """A query-string filter: unknown parameters are ignored, an empty one means "any"."""

    class Meta:
        unknown = EXCLUDE

    @pre_load
    def _blanks_are_missing(self, data: Any, **_: Any) -> Any:
        # An empty select or field in the filter form means "any".
        if hasattr(data, "items"):
            return {k: v for k, v in data.items() if v not in ("", None)}
        return data


class SessionFilterSchema(FilterSchema):
    """?state=failed&org=<org id>&older_than_hours=2&q=<session or person id>&page=2"""

    state = fields.String(load_default=None, validate=validate.OneOf(STATES, error="Unknown state."))
    org = fields.String(load_default=None, validate=validate.Length(max=64))
    older_than_hours = fields.Float(load_default=None, validate=validate.Range(min=0, max=24 * 365))
    newer_than_hours = fields.Float(load_default=None, validate=validate.Range(min=0, max=24 * 365))
    q = fields.String(load_default=None, validate=validate.Length(max=64))
    flagged = fields.Boolean(load_default=False)
    page = _page()

    @post_load
    def _to_filter(self, data: dict[str, Any], **_: Any) -> SessionFilter:
        return SessionFilter(
            state=data["state"],
            org_id=data["org"],
            older_than_hours=data["older_than_hours"],
            newer_than_hours=data["newer_than_hours"],
            search=data["q"],
            flagged=data["flagged"],
            page=data["page"],
        )


class DeliveryFilterSchema(FilterSchema):
    """?status=failed&kind=ready&org=<org id>&session=<session id or its start>&page=2"""

    status = fields.String(load_default=None)
    kind = fields.String(
        load_default=None,
        validate=validate.Regexp(r"^[a-z_.]{1,100}$", error="A template or event name, like ready."),
    )
    org = fields.String(load_default=None, validate=validate.Length(max=64))
    session = fields.String(
        load_default=None,
        validate=validate.Regexp(r"^[0-9a-fA-F-]{1,36}$", error="A session id, or its start."),
    )
    page = _page()
    statuses: tuple[str, ...] = ()

    @validates("status")
    def _known_status(self, value: str | None, **_: Any) -> None:
        if value is not None and value not in self.statuses:
            raise ValidationError(f"One of: {', '.join(self.statuses)}.")

    @post_load
    def _to_filter(self, data: dict[str, Any], **_: Any) -> DeliveryFilter:
        return DeliveryFilter(
            status=data["status"],
            kind=data["kind"],
            org_id=data["org"],
            session=data["session"],
            page=data["page"],
        )


class EmailFilterSchema(DeliveryFilterSchema):
    statuses = EMAIL_STATUSES


class WebhookFilterSchema(DeliveryFilterSchema):
    statuses = WEBHOOK_STATUSES


class FailSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    reason = fields.String(
        required=True,
        validate=validate.Length(min=3, max=2000, error="Please give a reason (3 to 2000 characters)."),
        error_messages={"required": "Please give a reason."},
    )


class DeleteSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    confirm = fields.Boolean(
        required=True,
        validate=validate.Equal(
            True, error="Confirm: deleting removes the photos, headshots and personal info."
        ),
    )


class SessionRowSchema(Schema):
    id = fields.String()
    org_id = fields.String()
    org_name = fields.String()
    user_id = fields.String()
    state = fields.String()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    failure_reason = fields.String(allow_none=True)
    flagged = fields.Boolean()


class SessionPageSchema(Schema):
    sessions = fields.List(fields.Nested(SessionRowSchema), attribute="rows")
    total = fields.Integer()
    page = fields.Integer()
    pages = fields.Integer()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    csrf_token = fields.Function(
        lambda _: csrf_token(), metadata={"description": "send as X-CSRF-Token on writes"}
    )


class HandledSchema(Schema):
    consumer = fields.String()
    at = fields.DateTime()


class EntrySchema(Schema):
    at = fields.DateTime()
    kind = fields.String()
    title = fields.String()
    detail = fields.String()
    state = fields.String(allow_none=True)
    message_id = fields.String(allow_none=True)
    sent_at = fields.DateTime(allow_none=True)
    publish_error = fields.String(allow_none=True)
    handled_by = fields.List(fields.Nested(HandledSchema))
    attempt = fields.Integer(allow_none=True, metadata={"description": "e-mails and webhooks: 1, 2, …"})
    outcome = fields.String(allow_none=True)
    latency_ms = fields.Float(allow_none=True)
    status_code = fields.Integer(allow_none=True)
    answer = fields.String(allow_none=True, metadata={"description": "the server's reply, first KB"})
    error = fields.String(allow_none=True)


class StageSchema(Schema):
    state = fields.String()
    label = fields.String()
    started = fields.DateTime()
    ended = fields.DateTime(allow_none=True)
    seconds = fields.Float()


class PhotoDecisionSchema(Schema):
    photo_id = fields.String()
    decision = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    quality = fields.Float(allow_none=True)


class TimelineSchema(Schema):
    session = fields.Nested(SessionRowSchema)
    failure_reason = fields.String(allow_none=True)
    personal_info_erased = fields.Boolean()
    entries = fields.List(fields.Nested(EntrySchema))
    stages = fields.List(fields.Nested(StageSchema))
    photos = fields.List(fields.Nested(PhotoDecisionSchema))


class TrySchema(Schema):
    number = fields.Integer(allow_none=True)
    at = fields.DateTime()
    latency_ms = fields.Float()
    outcome = fields.String()
    status_code = fields.Integer(allow_none=True)
    answer = fields.String(allow_none=True)
    error = fields.String(allow_none=True)


class EmailRowSchema(Schema):
    id = fields.Integer()
    org_id = fields.String()
    org_name = fields.String()
    session_id = fields.String(allow_none=True)
    user_id = fields.String(allow_none=True)
    recipient = fields.String(allow_none=True)
    subject = fields.String(allow_none=True)
    kind = fields.String(metadata={"description": "the template: invite, submitted, rejected, ready, failed"})
    status = fields.String(metadata={"description": ", ".join(EMAIL_STATUSES)})
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)
    preview_key = fields.String(allow_none=True, metadata={"description": "the .eml file (embedded mode)"})
    tries = fields.List(fields.Nested(TrySchema))


class WebhookRowSchema(Schema):
    id = fields.Integer()
    org_id = fields.String()
    org_name = fields.String()
    session_id = fields.String(allow_none=True)
    kind = fields.String(metadata={"description": "the event"})
    status = fields.String(metadata={"description": ", ".join(WEBHOOK_STATUSES)})
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    next_attempt_at = fields.DateTime(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)
    tries = fields.List(fields.Nested(TrySchema))


class EmailPageSchema(Schema):
    emails = fields.List(fields.Nested(EmailRowSchema), attribute="rows")
    total = fields.Integer()
    page = fields.Integer()
    pages = fields.Integer()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())


class WebhookPageSchema(Schema):
    deliveries = fields.List(fields.Nested(WebhookRowSchema), attribute="rows")
    total = fields.Integer()
    page = fields.Integer()
    pages = fields.Integer()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())


class ErrorSchema(Schema):
    error = fields.Dict()


class AuditFilterSchema(FilterSchema):
    """?page=2 of the audit log (its other filters are plain text, matched as given)."""

    page = _page()
