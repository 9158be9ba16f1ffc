"""Read-side of the sessions page: filter, search, count and page sessions across organizations.

    page = find_sessions(db_session, SessionFilter(state="failed", older_than_hours=2), now=now)
    page.rows, page.total, page.counts   # counts per state ignore the state filter (the tabs)

Support staff read across organizations (``db.session(all_orgs=True)``); nothing here writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from libs.contracts import SessionState
from libs.db import HeadshotSession, Organization, StuckCheck, User

PAGE_SIZE = 25
Q = TypeVar("Q", bound=Select)  # type: ignore[type-arg]


@dataclass(frozen=True)
class SessionFilter:
    state: str | None = None
    org_id: str | None = None
    older_than_hours: float | None = None  # last change at least this long ago
    newer_than_hours: float | None = None  # created at most this long ago
    search: str | None = None  # a session id or a person (user) id, or the start of one
    flagged: bool = False  # only sessions the stuck check flagged
    page: int = 1


@dataclass(frozen=True)
class SessionRow:
    id: str
    org_id: str
    org_name: str
    user_id: str
    state: str
    created_at: datetime
    updated_at: datetime
    failure_reason: str | None
    flagged: bool


@dataclass(frozen=True)
class SessionPage:
    rows: list[SessionRow]
    total: int
    page: int
    pages: int
    counts: dict[str, int]


def _filtered(query: Q, f: SessionFilter, now: datetime, *, with_state: bool) -> Q:
    if with_state and f.state:
        query = query.where(HeadshotSession.state == f.state)
    if f.org_id:
        query = query.where(HeadshotSession.org_id == f.org_id)
    if f.older_than_hours is not None:
        query = query.where(HeadshotSession.updated_at <= now - timedelta(hours=f.older_than_hours))
    if f.newer_than_hours is not None:
        query = query.where(HeadshotSession.created_at >= now - timedelta(hours=f.newer_than_hours))
    if f.search:
        term = f.search.strip().lower()
        query = query.where(
            or_(HeadshotSession.id.startswith(term, autoescape=True), HeadshotSession.user_id == term)
        )
    if f.flagged:
        query = query.where(
            select(StuckCheck.session_id)
            .where(
                StuckCheck.session_id == HeadshotSession.id,
                StuckCheck.state == HeadshotSession.state,
                StuckCheck.flagged_at.is_not(None),
            )
            # Its own stuck_checks: the sessions list joins that table too, and correlating the
            # two would leave this subquery with nothing to select from.
            .correlate(HeadshotSession)
            .exists()
        )
    return query


def paged(
    db_session: Session, query: Q, wanted: int, size: int, order: Sequence[Any]
) -> tuple[list[Any], int, int, int]:
    """One page of ``query`` in ``order``: (rows, total, page, pages); a page past the end gives
    the last one."""
    total = db_session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    pages = max(1, -(-total // size))
    page = min(max(1, wanted), pages)
    rows = db_session.execute(query.order_by(*order).limit(size).offset((page - 1) * size)).all()
    return list(rows), total, page, pages


def find_sessions(db_session: Session, f: SessionFilter, *, now: datetime) -> SessionPage:
    base = (
        select(HeadshotSession, Organization.name, StuckCheck.flagged_at, StuckCheck.state)
        .join(Organization, Organization.id == HeadshotSession.org_id)
        .outerjoin(StuckCheck, StuckCheck.session_id == HeadshotSession.id)
    )
    query = _filtered(base, f, now, with_state=True)
    order = (HeadshotSession.updated_at.desc(), HeadshotSession.id)
    found, total, page, pages = paged(db_session, query, f.page, PAGE_SIZE, order)
    rows = [
        SessionRow(
            id=hs.id,
            org_id=hs.org_id,
            org_name=org_name,
            user_id=hs.user_id,
            state=hs.state,
            created_at=hs.created_at,
            updated_at=hs.updated_at,
            failure_reason=hs.failure_reason,
            flagged=flagged_at is not None and flagged_state == hs.state,
        )
        for hs, org_name, flagged_at, flagged_state in found
    ]
    count_query = _filtered(
        select(HeadshotSession.state, func.count()).group_by(HeadshotSession.state), f, now, with_state=False
    )
    counts = {state.value: 0 for state in SessionState}
    counts.update({state: n for state, n in db_session.execute(count_query).all()})
    return SessionPage(rows=rows, total=total, page=page, pages=pages, counts=counts)


def organizations(db_session: Session) -> list[tuple[str, str]]:
    return [(o.id, o.name) for o in db_session.scalars(select(Organization).order_by(Organization.name))]


def person_of(db_session: Session, hs: HeadshotSession) -> User | None:
    return db_session.get(User, hs.user_id)


def session_row(db_session: Session, hs: HeadshotSession) -> SessionRow:
    org = db_session.get(Organization, hs.org_id)
    check = db_session.get(StuckCheck, hs.id)
    return SessionRow(
        id=hs.id,
        org_id=hs.org_id,
        org_name=org.name if org else "",
        user_id=hs.user_id,
        state=hs.state,
        created_at=hs.created_at,
        updated_at=hs.updated_at,
        failure_reason=hs.failure_reason,
        flagged=check is not None and check.flagged_at is not None and check.state == hs.state,
    )
