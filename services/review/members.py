"""The team list: every member with a status derived from their latest session, last activity and
headshot count; counts per status; search, filter and pages. One query per page (window function
for each member's latest session), so an org of thousands stays fast."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select

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


def _members(org_id: str, only: Any = None) -> Any:
    """One row per member with their derived status, as a subquery. Correlated lookups through the
    (user_id) index keep it linear in the number of members on SQLite and PostgreSQL alike (a join
    to a window-function subquery was scanned once per member on SQLite: quadratic)."""
    mine = and_(HeadshotSession.user_id == User.id, HeadshotSession.state != S.DELETED)

    def latest(column: Any) -> Any:
        return (
            select(column)
            .where(mine)
            .order_by(HeadshotSession.created_at.desc())
            .limit(1)
            .correlate(User)
            .scalar_subquery()
        )

    latest_state, latest_updated = latest(HeadshotSession.state), latest(HeadshotSession.updated_at)
    shots = (
        select(func.count(Headshot.id))
        .join(HeadshotSession, HeadshotSession.id == Headshot.session_id)
        .where(HeadshotSession.user_id == User.id, HeadshotSession.state == S.COMPLETED)
        .correlate(User)
        .scalar_subquery()
    )
    rows = (
        select(
            User.id,
            User.email,
            User.display_name,
            User.role,
            User.active,
            User.created_at,
            latest_state.label("state"),
            latest_updated.label("updated_at"),
            shots.label("headshots"),
        )
        .where(User.org_id == org_id, *(() if only is None else (User.id.in_(only),)))
        .subquery()
    )
    status = case(
        (rows.c.active.is_(False), literal("deactivated")),
        (rows.c.state.is_(None), literal("invited")),
        (rows.c.state.in_([str(s) for s in _IN_PROGRESS]), literal("in_progress")),
        else_=rows.c.state,
    )
    return select(
        rows.c.id,
        rows.c.email,
        rows.c.display_name,
        rows.c.role,
        rows.c.active,
        status.label("status"),
        rows.c.state,
        func.coalesce(rows.c.updated_at, rows.c.created_at).label("last_activity"),
        rows.c.headshots,
    ).subquery()


def team_page(uow: UnitOfWork, org_id: str, query: TeamQuery) -> TeamPage:
    return team_page_sized(uow, org_id, query, PAGE_SIZE)


def team_page_sized(uow: UnitOfWork, org_id: str, query: TeamQuery, size: int) -> TeamPage:
    """One page of the team. The statements run on the unit of work's connection, below the ORM's
    tenant filter: they carry their own ``users.org_id`` test, and every other table is reached
    through the member's id. (The ORM filter would add ``org_id`` to each correlated lookup, and
    SQLite, without statistics, then walks the whole org's sessions once per member.)"""
    t = _members(org_id)
    conn = uow.session.connection()
    counts = {key: 0 for key in STATUSES}
    with_headshots = func.sum(case((t.c.headshots > 0, 1), else_=0))
    counts["with_headshots"] = 0
    for key, n, shots in conn.execute(select(t.c.status, func.count(), with_headshots).group_by(t.c.status)):
        counts[str(key)] = n
        counts["with_headshots"] += int(shots or 0)
    counts["all"] = sum(counts[k] for k in STATUSES)

    search = query.search.strip().lower()
    if query.status in STATUSES:
        # The status is derived: filter on the whole derived table.
        filtered = select(t).where(t.c.status == query.status)
        if search:
            filtered = filtered.where(
                or_(
                    func.lower(t.c.email).like(f"%{search}%"),
                    func.lower(t.c.display_name).like(f"%{search}%"),
                )
            )
            total = conn.scalar(select(func.count()).select_from(filtered.subquery())) or 0
        else:
            total = counts[query.status]
        pages = max(1, -(-total // size))
        page = min(max(1, query.page), pages)
        ordered = filtered.order_by(func.lower(t.c.email), t.c.id).limit(size).offset((page - 1) * size)
    else:
        # No status filter: choose the page's members on the users table alone, then derive their
        # status only (the last page costs what the first does).
        people = select(User.id).where(User.org_id == org_id)
        if search:
            people = people.where(
                or_(
                    func.lower(User.email).like(f"%{search}%"),
                    func.lower(User.display_name).like(f"%{search}%"),
                )
            )
            total = conn.scalar(select(func.count()).select_from(people.subquery())) or 0
        else:
            total = counts["all"]
        pages = max(1, -(-total // size))
        page = min(max(1, query.page), pages)
        ids = people.order_by(func.lower(User.email), User.id).limit(size).offset((page - 1) * size)
        chosen = _members(org_id, only=ids.scalar_subquery())
        ordered = select(chosen).order_by(func.lower(chosen.c.email), chosen.c.id)
    result = conn.execute(ordered)
    rows = [
        MemberRow(
            r.id,
            r.email,
            r.display_name,
            r.role,
            bool(r.active),
            str(r.status),
            r.state,
            _aware(r.last_activity),
            int(r.headshots),
        )
        for r in result
    ]
    return TeamPage(rows, counts, total, page, pages)


def _aware(value: datetime | str) -> datetime:
    """Column expressions (coalesce) come back without the UTC column type: naive on SQLite."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# Spreadsheets run a cell starting with one of these as a formula (CSV injection): quote it as text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
EXPORT_HEADER = ("email", "name", "status", "last_activity", "headshots")


def safe_cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def export_rows(uow: UnitOfWork, org_id: str, batch: int = 1000) -> Iterator[tuple[str, ...]]:
    """Every member as a CSV row (header first), read a page at a time so nothing is built in memory."""
    yield EXPORT_HEADER
    page = 1
    while True:
        team = team_page_sized(uow, org_id, TeamQuery(page=page), batch)
        for r in team.rows:
            when = r.last_activity.strftime("%Y-%m-%d %H:%M")
            yield (safe_cell(r.email), safe_cell(r.name), r.status, when, str(r.headshots))
        if page >= team.pages:
            return
        page += 1
