"""The team list: every member with a status derived from their latest session, last activity and
headshot count; counts per status; search, filter and pages. One query per page (window function
for each member's latest session), so an org of thousands stays fast."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, case, func, literal, or_, select

from libs.contracts import SessionState
from libs.db import Headshot, HeadshotSession, UnitOfWork, User

S = SessionState
PAGE_SIZE = 50

# Status shown on the team page → the latest session states it covers (None: no session yet).
STATUSES: dict[str, str] = {
    "invited": "Invited",
    "onboarding": "Onboarding",
    "submitted": "Submitted",
    "in_review": "Waiting for review",
    "in_progress": "In progress",
    "completed": "Completed",
    "rejected": "Rejected",
    "failed": "Failed",
    "deactivated": "Deactivated",
}
_IN_PROGRESS = (S.QUEUED, S.PREPROCESSING, S.TRAINING, S.GENERATING)


@dataclass(frozen=True)
class TeamQuery:
    search: str = ""
    status: str = ""
    page: int = 1


@dataclass(frozen=True)
class MemberRow:
    id: str
    email: str
    name: str
    role: str
    active: bool
    status: str
    state: str | None
    last_activity: datetime
    headshots: int


@dataclass(frozen=True)
class TeamPage:
    rows: list[MemberRow]
    counts: dict[str, int]
    total: int  # members matching the query
    page: int
    pages: int


def _base(org_id: str) -> tuple[Select[Any], Any]:
    latest = (
        select(
            HeadshotSession.user_id,
            HeadshotSession.state,
            HeadshotSession.updated_at,
            func.row_number()
            .over(partition_by=HeadshotSession.user_id, order_by=HeadshotSession.created_at.desc())
            .label("rn"),
        )
        .where(HeadshotSession.org_id == org_id, HeadshotSession.state != S.DELETED)
        .subquery()
    )
    shots = (
        select(HeadshotSession.user_id, func.count(Headshot.id).label("n"))
        .join(Headshot, Headshot.session_id == HeadshotSession.id)
        .where(HeadshotSession.org_id == org_id, HeadshotSession.state == S.COMPLETED)
        .group_by(HeadshotSession.user_id)
        .subquery()
    )
    status = case(
        (User.active.is_(False), literal("deactivated")),
        (latest.c.state.is_(None), literal("invited")),
        (latest.c.state.in_([str(s) for s in _IN_PROGRESS]), literal("in_progress")),
        else_=latest.c.state,
    ).label("status")
    query = (
        select(
            User,
            status,
            latest.c.state,
            func.coalesce(latest.c.updated_at, User.created_at).label("last_activity"),
            func.coalesce(shots.c.n, 0).label("headshots"),
        )
        .outerjoin(latest, and_(latest.c.user_id == User.id, latest.c.rn == 1))
        .outerjoin(shots, shots.c.user_id == User.id)
        .where(User.org_id == org_id)
    )
    return query, status


def team_page(uow: UnitOfWork, org_id: str, query: TeamQuery) -> TeamPage:
    base, status = _base(org_id)
    counted = base.subquery()
    counts = {key: 0 for key in STATUSES}
    for key, n in uow.session.execute(select(counted.c.status, func.count()).group_by(counted.c.status)):
        counts[str(key)] = n
    counts["all"] = sum(counts[k] for k in STATUSES)
    counts["with_headshots"] = (
        uow.session.scalar(select(func.count()).select_from(counted).where(counted.c.headshots > 0)) or 0
    )

    filtered = base
    if query.search.strip():
        like = f"%{query.search.strip().lower()}%"
        filtered = filtered.where(
            or_(func.lower(User.email).like(like), func.lower(User.display_name).like(like))
        )
    if query.status in STATUSES:
        filtered = filtered.where(status == query.status)
    total = uow.session.scalar(select(func.count()).select_from(filtered.subquery())) or 0
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, query.page), pages)
    result = uow.session.execute(
        filtered.order_by(func.lower(User.email)).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    )
    rows = [
        MemberRow(
            user.id,
            user.email,
            user.display_name,
            user.role,
            user.active,
            str(row_status),
            state,
            last,
            int(n),
        )
        for user, row_status, state, last, n in result
    ]
    return TeamPage(rows, counts, total, page, pages)
