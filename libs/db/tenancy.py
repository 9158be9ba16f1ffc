"""Tenant scoping that makes a cross-org read impossible by construction.

A session scoped with :func:`scope_session` carries its ``org_id`` in ``session.info``. Two
listeners then apply to every statement of that session:

- every ORM SELECT (queries, ``session.get``, relationship and lazy loads) gets
  ``WHERE <entity>.org_id = :org_id`` for every :class:`Tenanted` entity it touches, through
  SQLAlchemy's ``with_loader_criteria``; another org's row simply does not exist;
- every flush refuses a Tenanted row of another org, and stamps the org on new rows that have none.

Unscoped sessions exist only through ``Database.session(all_orgs=True)``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from libs.db.models import Organization, Tenanted, User

_KEY = "org_id"


class CrossTenantWrite(PermissionError):
    pass


def scope_session(session: Session, org_id: str) -> Session:
    session.info[_KEY] = str(org_id)
    return session


def session_org(session: Session) -> str | None:
    return session.info.get(_KEY)


@event.listens_for(Session, "do_orm_execute")
def _filter_reads(state: ORMExecuteState) -> None:
    org_id = state.session.info.get(_KEY)
    if org_id is None or not state.is_select:
        return
    state.statement = state.statement.options(
        with_loader_criteria(Tenanted, lambda cls: cls.org_id == org_id, include_aliases=True),
        # Users and the organization itself are filtered too: a scoped session sees its own org only.
        with_loader_criteria(User, lambda cls: cls.org_id == org_id, include_aliases=True),
        with_loader_criteria(Organization, lambda cls: cls.id == org_id, include_aliases=True),
    )


@event.listens_for(Session, "before_flush")
def _check_writes(session: Session, _ctx: Any, _instances: Any) -> None:
    org_id = session.info.get(_KEY)
    if org_id is None:
        return
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, Tenanted):
            continue
        if obj.org_id is None:
            obj.org_id = org_id
        elif obj.org_id != org_id:
            raise CrossTenantWrite(
                f"{type(obj).__name__} of another organization in a session scoped to {org_id}"
            )
