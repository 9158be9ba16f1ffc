"""Every event of the system, declared once: name, routing key, version, body schema.

A message on the wire is a JSON envelope::

    {
      "message_id": "4f7c…",            # uuid, also the AMQP message_id
      "type": "session.submitted",      # the routing key
      "version": 1,
      "occurred_at": "2026-11-24T03:00:00+00:00",
      "org_id": "0d9e…",
      "session_id": "a51b…",            # null only for org-wide events (models.retired)
      "data": {"package": "executive", "format": "portrait", "styles": ["navy:suit"], "photo_count": 4}
    }

Events never carry personal info (name, gender, eye colour, glasses): consumers read it from the
database while it exists. Producers build messages with :func:`new_message`; consumers turn bytes
into a :class:`Message` with :func:`decode_message`, which raises :class:`ContractError` for
anything malformed — the consumer runner dead-letters those.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from libs.contracts.quickload import Loader
from libs.contracts.states import SessionState

_STAGES = [s.value for s in SessionState]


class ContractError(ValueError):
    """A message that does not match its contract (bad JSON, unknown type, invalid body)."""

    def __init__(self, message: str, errors: Any = None) -> None:
        super().__init__(message if errors is None else f"{message}: {errors}")
        self.errors = errors


class _Strict(Schema):
    class Meta:
        unknown = RAISE


# --- bodies (the "data" of each event) --------------------------------------------------------


class SessionSubmittedData(_Strict):
    package = fields.String(required=True, validate=validate.Length(min=1, max=64))
    format = fields.String(required=True, validate=validate.Length(min=1, max=64))
    styles = fields.List(
        fields.String(validate=validate.Length(min=3, max=130)),
        required=True,
        validate=validate.Length(min=1),
    )
    photo_count = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))


class SessionApprovedData(_Strict):
    auto = fields.Boolean(required=True)  # true: the org does not review, approval was automatic
    reviewer_id = fields.String(required=True, allow_none=True)


class SessionRejectedData(_Strict):
    reviewer_id = fields.String(required=True)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class PhotosProcessedData(_Strict):
    photo_ids = fields.List(fields.String(), required=True, validate=validate.Length(min=1))


class ModelTrainedData(_Strict):
    person_model_id = fields.String(required=True)
    engine = fields.String(required=True)
    seconds = fields.Float(required=True, validate=validate.Range(min=0))


class HeadshotGeneratedData(_Strict):
    headshot_id = fields.String(required=True)
    style = fields.String(required=True)
    done = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    total = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))


class SessionCompletedData(_Strict):
    headshot_count = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))


class SessionFailedData(_Strict):
    stage = fields.String(required=True, validate=validate.OneOf(_STAGES))
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class ModelsRetiredData(_Strict):
    person_model_ids = fields.List(fields.String(), required=True)


class MemberInvitedData(_Strict):
    # Ids only: the notification service reads the address from the database at send time.
    user_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    invited_by = fields.String(required=True, allow_none=True)


class WebhookTestedData(_Strict):
    requested_by = fields.String(required=True, allow_none=True)  # the admin's id (null: an API key alone)


class SessionProgressData(_Strict):
    stage = fields.String(required=True, validate=validate.OneOf(_STAGES))
    done = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    total = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))


# --- the declarations -------------------------------------------------------------------------


@dataclass(frozen=True)
class EventType:
    """One kind of event. ``routing_key`` is the only place its string appears in the code."""

    name: str
    routing_key: str
    version: int
    schema: type[Schema]
    needs_session: bool = True
    description: str = ""

    def __str__(self) -> str:
        return self.routing_key

    @cached_property
    def loader(self) -> Loader:
        """The body schema's loader, built once per event type and shared: building a marshmallow
        schema costs more than loading with it, and loading keeps no state on the instance."""
        return Loader(self.schema())


SESSION_SUBMITTED = EventType(
    "SessionSubmitted",
    "session.submitted",
    1,
    SessionSubmittedData,
    description="An employee submitted photos, info and styles.",
)
SESSION_APPROVED = EventType(
    "SessionApproved",
    "session.approved",
    1,
    SessionApprovedData,
    description="Approved by the org admin, or automatically.",
)
SESSION_REJECTED = EventType(
    "SessionRejected",
    "session.rejected",
    1,
    SessionRejectedData,
    description="The org admin sent the session back to the employee.",
)
PHOTOS_PROCESSED = EventType(
    "PhotosProcessed",
    "photos.processed",
    1,
    PhotosProcessedData,
    description="Photos oriented, cleaned and cropped for training.",
)
MODEL_TRAINED = EventType(
    "ModelTrained", "model.trained", 1, ModelTrainedData, description="The person model is ready."
)
HEADSHOT_GENERATED = EventType(
    "HeadshotGenerated",
    "headshot.generated",
    1,
    HeadshotGeneratedData,
    description="One headshot was rendered.",
)
SESSION_COMPLETED = EventType(
    "SessionCompleted", "session.completed", 1, SessionCompletedData, description="Every headshot is ready."
)
SESSION_FAILED = EventType(
    "SessionFailed", "session.failed", 1, SessionFailedData, description="A worker gave up on the session."
)
MODELS_RETIRED = EventType(
    "ModelsRetired",
    "models.retired",
    1,
    ModelsRetiredData,
    needs_session=False,
    description="Person models past retention were deleted.",
)
SESSION_PROGRESS = EventType(
    "SessionProgress",
    "session.progress",
    1,
    SessionProgressData,
    description="A stage moved forward (done of total).",
)

MEMBER_INVITED = EventType(
    "MemberInvited",
    "member.invited",
    1,
    MemberInvitedData,
    needs_session=False,
    description="An org admin invited a person (or sent the invite again).",
)

# Not published on the bus: it names the test delivery an org admin sends to their own webhook
# endpoint (the receiver sees it as the "type"), written straight into the delivery ledger.
WEBHOOK_TESTED = EventType(
    "WebhookTested",
    "webhook.tested",
    1,
    WebhookTestedData,
    needs_session=False,
    description="An org admin sent a test event to the organization's webhook endpoint.",
)

EVENTS: dict[str, EventType] = {
    e.routing_key: e
    for e in (
        SESSION_SUBMITTED,
        SESSION_APPROVED,
        SESSION_REJECTED,
        PHOTOS_PROCESSED,
        MODEL_TRAINED,
        HEADSHOT_GENERATED,
        SESSION_COMPLETED,
        SESSION_FAILED,
        MODELS_RETIRED,
        SESSION_PROGRESS,
        MEMBER_INVITED,
        WEBHOOK_TESTED,
    )
}


def event_type(routing_key: str) -> EventType:
    try:
        return EVENTS[routing_key]
    except KeyError:
        raise ContractError(f"unknown event type {routing_key!r}") from None


# --- the envelope -----------------------------------------------------------------------------


class EnvelopeSchema(_Strict):
    message_id = fields.UUID(required=True)
    type = fields.String(required=True, validate=validate.OneOf(list(EVENTS)))
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    occurred_at = fields.AwareDateTime(required=True)
    org_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    session_id = fields.String(required=True, allow_none=True, validate=validate.Length(min=1, max=64))
    data = fields.Dict(required=True)


_ENVELOPE = Loader(EnvelopeSchema())  # built once, like each event's loader


@dataclass(frozen=True)
class Message:
    event: EventType
    org_id: str
    session_id: str | None
    data: dict[str, Any]
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def routing_key(self) -> str:
        return self.event.routing_key

    def to_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "type": self.event.routing_key,
            "version": self.event.version,
            "occurred_at": self.occurred_at.isoformat(),
            "org_id": self.org_id,
            "session_id": self.session_id,
            "data": self.data,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)


def new_message(event: EventType, *, org_id: str, session_id: str | None, **data: Any) -> Message:
    """Build a validated message; invalid data raises :class:`ContractError` at the producer."""
    message = Message(event, str(org_id), None if session_id is None else str(session_id), dict(data))
    return decode_message(message.to_dict())  # one validation path for producers and consumers


def decode_message(body: bytes | str | dict[str, Any]) -> Message:
    """Validate an envelope and its body against the contract."""
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ContractError(f"message body is not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise ContractError("message body must be a JSON object")
    try:
        env = _ENVELOPE.load(body)
    except ValidationError as exc:
        raise ContractError("invalid envelope", exc.messages) from None
    event = EVENTS[env["type"]]
    if env["version"] != event.version:
        raise ContractError(f"{event.routing_key} version {env['version']} is not supported")
    if event.needs_session and env["session_id"] is None:
        raise ContractError(f"{event.routing_key} needs a session_id")
    try:
        data = event.loader.load(env["data"])
    except ValidationError as exc:
        raise ContractError(f"invalid {event.routing_key} body", exc.messages) from None
    return Message(event, env["org_id"], env["session_id"], data, str(env["message_id"]), env["occurred_at"])
