"""The shared language of the services: events, routing keys, schemas, session states.

Imports neither kombu nor SQLAlchemy, so every service and test can use it cheaply.
"""

from libs.contracts.events import (
    EVENTS,
    HEADSHOT_GENERATED,
    MEMBER_INVITED,
    MODEL_TRAINED,
    MODELS_RETIRED,
    PHOTOS_PROCESSED,
    SESSION_APPROVED,
    SESSION_COMPLETED,
    SESSION_FAILED,
    SESSION_PROGRESS,
    SESSION_REJECTED,
    SESSION_SUBMITTED,
    WEBHOOK_TESTED,
    ContractError,
    EventType,
    Message,
    decode_message,
    event_type,
    new_message,
)
from libs.contracts.states import (
    LEGAL_TRANSITIONS,
    STAGES,
    IllegalTransition,
    SessionState,
    can_transition,
    stage_label,
    transition,
)
from libs.contracts.subscriptions import GATEWAY_EVENTS, SUBSCRIPTIONS, prefetch_for, queue_name

EXCHANGE = "headshots.events"
DEAD_LETTER_EXCHANGE = "headshots.dead"
RETRY_EXCHANGE = "headshots.retry"

__all__ = [
    "DEAD_LETTER_EXCHANGE",
    "EVENTS",
    "GATEWAY_EVENTS",
    "SUBSCRIPTIONS",
    "prefetch_for",
    "queue_name",
    "EXCHANGE",
    "HEADSHOT_GENERATED",
    "LEGAL_TRANSITIONS",
    "MEMBER_INVITED",
    "WEBHOOK_TESTED",
    "MODELS_RETIRED",
    "MODEL_TRAINED",
    "PHOTOS_PROCESSED",
    "RETRY_EXCHANGE",
    "SESSION_APPROVED",
    "SESSION_COMPLETED",
    "SESSION_FAILED",
    "SESSION_PROGRESS",
    "SESSION_REJECTED",
    "SESSION_SUBMITTED",
    "STAGES",
    "ContractError",
    "EventType",
    "IllegalTransition",
    "Message",
    "SessionState",
    "can_transition",
    "decode_message",
    "event_type",
    "new_message",
    "stage_label",
    "transition",
]
