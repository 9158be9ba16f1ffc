"""Session states and the one function that owns the legal transitions.

    onboarding → submitted → in_review → queued → preprocessing → training → generating → completed
    plus rejected (back to onboarding), failed, deleted.

Anything that changes a session's state calls :func:`transition`; an illegal move is an
:class:`IllegalTransition`, never a silent overwrite.
"""

from __future__ import annotations

from enum import StrEnum


class SessionState(StrEnum):
    ONBOARDING = "onboarding"
    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    QUEUED = "queued"
    PREPROCESSING = "preprocessing"
    TRAINING = "training"
    GENERATING = "generating"
    COMPLETED = "completed"
    REJECTED = "rejected"
    FAILED = "failed"
    DELETED = "deleted"


S = SessionState

# Work in progress may fail at any step; failed sessions can be retried from the queue by support.
_IN_FLIGHT = (S.SUBMITTED, S.IN_REVIEW, S.QUEUED, S.PREPROCESSING, S.TRAINING, S.GENERATING)

LEGAL_TRANSITIONS: dict[SessionState, frozenset[SessionState]] = {
    S.ONBOARDING: frozenset({S.SUBMITTED, S.DELETED}),
    # Straight approval (no manual review) goes submitted → queued.
    S.SUBMITTED: frozenset({S.IN_REVIEW, S.QUEUED, S.FAILED, S.DELETED}),
    S.IN_REVIEW: frozenset({S.QUEUED, S.REJECTED, S.FAILED, S.DELETED}),
    S.QUEUED: frozenset({S.PREPROCESSING, S.FAILED, S.DELETED}),
    S.PREPROCESSING: frozenset({S.TRAINING, S.FAILED, S.DELETED}),
    S.TRAINING: frozenset({S.GENERATING, S.FAILED, S.DELETED}),
    S.GENERATING: frozenset({S.COMPLETED, S.FAILED, S.DELETED}),
    S.COMPLETED: frozenset({S.DELETED}),
    # A rejected session goes back to onboarding so the person can fix and resubmit.
    S.REJECTED: frozenset({S.ONBOARDING, S.DELETED}),
    S.FAILED: frozenset({S.QUEUED, S.DELETED}),
    S.DELETED: frozenset(),
}

TERMINAL_STATES = frozenset({S.COMPLETED, S.DELETED})

# What the waiting page and the ops dashboard show, in order, with a person-friendly name.
STAGES: tuple[tuple[SessionState, str], ...] = (
    (S.SUBMITTED, "Submitted"),
    (S.IN_REVIEW, "Waiting for review"),
    (S.QUEUED, "In the queue"),
    (S.PREPROCESSING, "Preparing your photos"),
    (S.TRAINING, "Learning your likeness"),
    (S.GENERATING, "Creating your headshots"),
    (S.COMPLETED, "Done"),
)


class IllegalTransition(ValueError):
    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"a session cannot go from {current!r} to {target!r}")
        self.current = current
        self.target = target


def can_transition(current: str | SessionState, target: str | SessionState) -> bool:
    try:
        return SessionState(target) in LEGAL_TRANSITIONS[SessionState(current)]
    except ValueError:
        return False


def transition(current: str | SessionState, target: str | SessionState) -> SessionState:
    """Return ``target`` as a state if the move is legal, else raise :class:`IllegalTransition`."""
    if not can_transition(current, target):
        raise IllegalTransition(str(current), str(target))
    return SessionState(target)


def stage_label(state: str | SessionState) -> str:
    for stage, label in STAGES:
        if stage == state:
            return label
    return str(state).replace("_", " ").capitalize()
