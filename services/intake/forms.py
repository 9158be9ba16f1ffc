"""Requests into commands, for the pages (views.py) and the API (api.py) alike: load a schema,
build the command the domain takes. A schema's refusal becomes :class:`~services.intake.errors.Invalid`
(422 ``validation_failed`` naming each field, through the one error table in app.py).

    command = submission_command(uow, actor, session_id, {"agree_terms": True, "best_photos": True})
    outcome = submission.submit(uow, actor, command, catalog)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, ValidationError

from libs.catalog import Catalog
from libs.contracts import SessionState
from libs.db import UnitOfWork
from services.intake.commands import Answers, SubmitSession
from services.intake.errors import Invalid
from services.intake.schemas import SubmissionSchema
from services.intake.sessions import Actor, find_session, rules_for


def load(schema: Schema, given: Mapping[str, Any]) -> dict[str, Any]:
    """``schema.load(given)``, refused as :class:`Invalid` with marshmallow's per-field messages."""
    try:
        data: dict[str, Any] = schema.load(dict(given))
    except ValidationError as exc:
        messages = exc.messages
        raise Invalid(fields=messages if isinstance(messages, dict) else {"_schema": messages}) from None
    return data


def submission_command(
    uow: UnitOfWork, actor: Actor, session_id: str, given: Mapping[str, Any], catalog: Catalog | None = None
) -> SubmitSession:
    """What was saved, overridden by what the request ``given`` (the page posts the whole form;
    API clients usually send only ``agree_terms`` and ``best_photos``), checked all at once
    against the session's rules so every wrong field is named together.

    A session no longer in onboarding is not checked: submitting it again is answered by
    ``submit`` (already submitted, or not editable), whatever the request holds.
    """
    hs = find_session(uow, actor, session_id)
    saved = Answers.of(hs)
    if hs.state != SessionState.ONBOARDING:
        return SubmitSession(session_id, saved)
    data = load(SubmissionSchema(rules=rules_for(uow, hs, catalog)), {**saved.as_dict(), **given})
    return SubmitSession(session_id, Answers.from_loaded(data))
