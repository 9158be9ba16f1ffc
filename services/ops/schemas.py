"""Marshmallow schemas of the ops pages and API: the sessions filter, the fail form, and the JSON
shapes of sessions and timelines (the OpenAPI document is built from them)."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, fields, post_load, pre_load, validate

from libs.contracts import SessionState
from libs.web import csrf_token
from services.ops.queries import SessionFilter

STATES = [s.value for s in SessionState]


class SessionFilterSchema(Schema):
    """?state=failed&org=<org id>&older_than_hours=2&q=<session or person id>&page=2"""

    class Meta:
        unknown = EXCLUDE

    state = fields.String(load_default=None, validate=validate.OneOf(STATES, error="Unknown state."))
    org = fields.String(load_default=None, validate=validate.Length(max=64))
    older_than_hours = fields.Float(load_default=None, validate=validate.Range(min=0, max=24 * 365))
    newer_than_hours = fields.Float(load_default=None, validate=validate.Range(min=0, max=24 * 365))
    q = fields.String(load_default=None, validate=validate.Length(max=64))
    flagged = fields.Boolean(load_default=False)
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100000))

    @pre_load
    def _blanks_are_missing(self, data: Any, **_: Any) -> Any:
        # An empty select or field in the filter form means "any".
        if hasattr(data, "items"):
            return {k: v for k, v in data.items() if v not in ("", None)}
        return data

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


class ErrorSchema(Schema):
    error = fields.Dict()
