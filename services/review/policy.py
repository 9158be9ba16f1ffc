"""The organization's policy applied to a submitted session: manual review or straight approval,
and renewal (a new submission retires the person's earlier models).

Everything here writes through the unit of work it is given; the caller commits, so the state
change and the events it publishes (outbox rows) are one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from libs.contracts import MODELS_RETIRED, SESSION_APPROVED, Message, SessionState, new_message
from libs.db import HeadshotSession, Organization, PersonModel, UnitOfWork, utcnow

log = logging.getLogger("headshots.review")

S = SessionState
Publish = Callable[[Message], Any]


@dataclass(frozen=True)
class PolicyOutcome:
    state: str
    retired_model_ids: tuple[str, ...] = ()


def retire_earlier_models(uow: UnitOfWork, hs: HeadshotSession) -> list[str]:
    """Mark the live person models of the same person's earlier sessions retired; their ids."""
    models = uow.session.scalars(
        select(PersonModel)
        .join(HeadshotSession, HeadshotSession.id == PersonModel.session_id)
        .where(
            HeadshotSession.user_id == hs.user_id,
            HeadshotSession.id != hs.id,
            PersonModel.retired_at.is_(None),
        )
        .order_by(PersonModel.created_at)
    ).all()
    now = utcnow()
    for model in models:
        model.retired_at = now
    return [m.id for m in models]


def apply_policy(uow: UnitOfWork, hs: HeadshotSession, org: Organization, publish: Publish) -> PolicyOutcome:
    """Move a ``submitted`` session on: ``in_review`` when the org reviews by hand, else ``queued``
    with ``session.approved`` (auto). With renewal on, earlier models are retired first."""
    retired: list[str] = []
    if org.renewal:
        retired = retire_earlier_models(uow, hs)
        if retired:
            publish(new_message(MODELS_RETIRED, org_id=hs.org_id, session_id=hs.id, person_model_ids=retired))
            log.info("renewal: %d earlier model(s) of user %s retired", len(retired), hs.user_id)
    if org.manual_review:
        hs.move_to(S.IN_REVIEW)
    else:
        hs.move_to(S.QUEUED)
        publish(
            new_message(SESSION_APPROVED, org_id=hs.org_id, session_id=hs.id, auto=True, reviewer_id=None)
        )
    return PolicyOutcome(hs.state, tuple(retired))
