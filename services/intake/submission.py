"""Answering and submitting: personal info and style choices saved as the person goes, then
"Submit my photos", which queues the session for review and generation.

    with db.uow(org_id=actor.org_id) as uow:
        set_personal_info(uow, actor, SavePersonalInfo(hs.id, full_name="Bea", gender="female"))
        set_styles(uow, actor, ChooseStyles(hs.id, styles=("navy:suit",)), catalog)
        outcome = submit(uow, actor, command)    # command: forms.submission_command(...)

Each takes a command (commands.py) the edge built from a loaded schema; what depends on the
organization's rules is checked here, under the session's lock, with choices.py's checks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import delete

from libs.catalog import Catalog
from libs.contracts import SESSION_SUBMITTED, SessionState, new_message
from libs.db import ChosenStyle, HeadshotSession, UnitOfWork, utcnow
from services.intake.choices import format_errors, style_errors, submission_errors
from services.intake.commands import ChooseStyles, SavePersonalInfo, SubmitSession, Unset
from services.intake.errors import Invalid, NotEditable
from services.intake.sessions import WAITING_STATES, Actor, find_session, require_editable, rules_for

log = logging.getLogger("headshots.intake")

S = SessionState


def set_personal_info(uow: UnitOfWork, actor: Actor, command: SavePersonalInfo) -> HeadshotSession:
    """Save the given personal-info fields (progress: fields not given are left as they are)."""
    hs = find_session(uow, actor, command.session_id, lock=True)
    require_editable(hs)
    for name, value in command.changes().items():
        setattr(hs, name, value)
    uow.commit()
    return hs


def set_styles(
    uow: UnitOfWork, actor: Actor, command: ChooseStyles, catalog: Catalog | None = None
) -> HeadshotSession:
    """Save the chosen styles and/or format (progress: an empty style list is fine until submit);
    :class:`Invalid` naming the field when the organization's rules refuse them."""
    hs = find_session(uow, actor, command.session_id, lock=True)
    require_editable(hs)
    rules = rules_for(uow, hs, catalog)
    errors: dict[str, list[str]] = {}
    if not isinstance(command.styles, Unset) and (
        wrong := style_errors(list(command.styles), rules, at_least_one=False)
    ):
        errors["styles"] = wrong
    if isinstance(command.format, str) and (wrong := format_errors(command.format, rules)):
        errors["format"] = wrong
    if errors:
        raise Invalid(fields=errors)
    if not isinstance(command.styles, Unset):
        replace_styles(uow, hs, list(command.styles), [])
    if not isinstance(command.format, Unset):
        hs.format_id = command.format
    uow.commit()
    return hs


def replace_styles(uow: UnitOfWork, hs: HeadshotSession, chosen: list[str], preselected: list[str]) -> None:
    # A DELETE statement first: the ORM flushes inserts before deletes, which would trip the
    # (session_id, style_id) unique constraint when a style is kept.
    uow.session.execute(
        delete(ChosenStyle).where(ChosenStyle.session_id == hs.id, ChosenStyle.org_id == hs.org_id)
    )
    rows = [(sid, False) for sid in chosen] + [(sid, True) for sid in preselected]
    for position, (sid, is_pre) in enumerate(rows):
        uow.session.add(
            ChosenStyle(
                org_id=hs.org_id, session_id=hs.id, style_id=sid, preselected=is_pre, position=position
            )
        )
    uow.session.flush()
    uow.session.expire(hs, ["styles"])


@dataclass
class SubmitOutcome:
    session: HeadshotSession
    submitted_now: bool  # False: it was already submitted (double click, replayed request)
    styles: list[str] = field(default_factory=list)


def submit(
    uow: UnitOfWork, actor: Actor, command: SubmitSession, catalog: Catalog | None = None
) -> SubmitOutcome:
    """Submit with the command's answers, or raise :class:`Invalid` and change nothing.

    On success, in one transaction: the session moves to ``submitted``, its answers are written,
    its styles too (chosen + the package's pre-selected, flagged) and ``session.submitted`` goes
    into the outbox. The session row is locked first and its state checked, so a second submit of
    the same session changes nothing and says so. Under that lock the organization's rules are
    checked again (a photo removed in another tab meanwhile).
    """
    hs = find_session(uow, actor, command.session_id, lock=True)
    if hs.state != S.ONBOARDING:
        if hs.state in WAITING_STATES or hs.state == S.COMPLETED:
            uow.commit()  # nothing changed: releases the lock and keeps the loaded session readable
            return SubmitOutcome(hs, submitted_now=False)
        raise NotEditable()
    rules = rules_for(uow, hs, catalog)
    answers = command.answers
    chosen = list(answers.styles)
    if errors := submission_errors(chosen, answers.format, rules):
        uow.rollback()
        raise Invalid(fields=errors)

    answers.write_to(hs)
    preselected = [sid for sid in rules.package.preselected if sid not in chosen]
    replace_styles(uow, hs, chosen, preselected)
    hs.move_to(S.SUBMITTED)
    hs.submitted_at = utcnow()
    styles = chosen + preselected
    uow.add_message(
        new_message(
            SESSION_SUBMITTED,
            org_id=hs.org_id,
            session_id=hs.id,
            package=hs.package_id,
            format=hs.format_id,
            styles=styles,
            photo_count=rules.photo_count,
        )
    )
    uow.commit()
    log.info("session %s submitted: %d photos, %d styles", hs.id, rules.photo_count, len(styles))
    return SubmitOutcome(hs, submitted_now=True, styles=styles)
