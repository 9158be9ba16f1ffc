"""Who consumes what: DESIGN.md's event table as data, from which libs/messaging derives its queues.

Each (service, event) pair becomes a durable quorum queue named ``<service>.<routing key>``
shared by every instance of that service. The gateway is not listed here: each gateway instance
binds its own exclusive queue to :data:`GATEWAY_EVENTS` so every instance sees every event.
"""

from __future__ import annotations

from libs.contracts.events import (
    EVENTS,
    MEMBER_INVITED,
    MODEL_TRAINED,
    MODELS_RETIRED,
    PHOTOS_PROCESSED,
    SESSION_APPROVED,
    SESSION_COMPLETED,
    SESSION_FAILED,
    SESSION_REJECTED,
    SESSION_SUBMITTED,
    EventType,
)

SUBSCRIPTIONS: dict[str, tuple[EventType, ...]] = {
    "review": (SESSION_SUBMITTED,),
    "intake": (SESSION_REJECTED, SESSION_COMPLETED),
    "preprocess": (SESSION_APPROVED,),
    "generation": (PHOTOS_PROCESSED, MODELS_RETIRED),
    "notification": (
        SESSION_SUBMITTED,
        SESSION_APPROVED,
        SESSION_REJECTED,
        SESSION_COMPLETED,
        SESSION_FAILED,
        MEMBER_INVITED,
    ),
    "ops": (MODEL_TRAINED, SESSION_FAILED, MODELS_RETIRED),
}

# The gateway relays every event about one session to that session's waiting page(s).
GATEWAY_EVENTS: tuple[EventType, ...] = tuple(e for e in EVENTS.values() if e.needs_session)

# Messages a consumer takes before acking; generation renders one session at a time.
PREFETCH: dict[str, int] = {"generation": 1, "preprocess": 2}
DEFAULT_PREFETCH = 10


def queue_name(service: str, event: EventType) -> str:
    return f"{service}.{event.routing_key}"


def prefetch_for(service: str) -> int:
    return PREFETCH.get(service, DEFAULT_PREFETCH)
