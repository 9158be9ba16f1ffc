"""The database layer on SQLite and PostgreSQL: migrations, tenant scoping, unit of work."""

from __future__ import annotations

import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from libs.contracts import SESSION_SUBMITTED, IllegalTransition, new_message
from libs.db import (
    OUTBOX_CHANNEL,
    Base,
    CrossTenantWrite,
    Database,
    HeadshotSession,
    Organization,
    OutboxMessage,
    Photo,
    User,
)
from libs.db import database as database_module
from tests.support.database import end_backends

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request):
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    database = Database(url)
    yield database
    database.dispose()


def two_orgs(db):
    with db.uow(all_orgs=True) as uow:
        s = uow.session
        a, b = Organization(name="A", slug="a"), Organization(name="B", slug="b")
        s.add_all([a, b])
        s.flush()
        ua, ub = User(org_id=a.id, email="ann@a.example"), User(org_id=b.id, email="ben@b.example")
        s.add_all([ua, ub])
        s.flush()
        sa_ = HeadshotSession(org_id=a.id, user_id=ua.id, package_id="starter")
        sb = HeadshotSession(org_id=b.id, user_id=ub.id, package_id="starter")
        s.add_all([sa_, sb])
        s.flush()
        s.add(Photo(org_id=b.id, session_id=sb.id, original_key="k1", clean_key="k2", width=600, height=600))
        uow.commit()
    return a, b, sa_, sb


def test_migrations_create_every_table(db):
    tables = set(inspect(db.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_a_scoped_session_cannot_read_another_org(db):
    a, b, sa_, sb = two_orgs(db)
    with db.session(org_id=a.id) as s:
        assert s.get(HeadshotSession, sb.id) is None
        assert s.get(HeadshotSession, sa_.id) is not None
        assert s.scalars(select(HeadshotSession)).all() == [s.get(HeadshotSession, sa_.id)]
        assert s.scalar(select(func.count()).select_from(Photo)) == 0
        assert [u.email for u in s.scalars(select(User))] == ["ann@a.example"]
        assert s.get(Organization, b.id) is None
        # Even a join written to reach across orgs finds nothing.
        rows = s.execute(select(Photo.id).join(HeadshotSession, Photo.session_id == HeadshotSession.id)).all()
        assert rows == []
    with db.session(org_id=b.id) as s:
        assert len(s.get(HeadshotSession, sb.id).photos) == 1


def test_a_scoped_session_cannot_write_into_another_org(db):
    a, b, sa_, sb = two_orgs(db)
    with db.uow(org_id=a.id) as uow:
        uow.session.add(
            Photo(org_id=b.id, session_id=sb.id, original_key="x", clean_key="y", width=1, height=1)
        )
        with pytest.raises(CrossTenantWrite):
            uow.flush()
    with db.uow(org_id=a.id) as uow:  # rows with no org are stamped with the session's
        photo = Photo(session_id=sa_.id, original_key="x", clean_key="y", width=1, height=1)
        uow.session.add(photo)
        uow.commit()
        assert photo.org_id == a.id


def test_unscoped_sessions_must_be_asked_for():
    with pytest.raises(ValueError, match="all_orgs"):
        Database("sqlite://").session()


def submitted_for(org, session):
    return new_message(
        SESSION_SUBMITTED,
        org_id=org.id,
        session_id=session.id,
        package="starter",
        format="standard",
        styles=["navy:suit"],
        photo_count=1,
    )


def test_state_change_and_outbox_row_commit_together_or_not_at_all(db):
    a, _b, sa_, _sb = two_orgs(db)
    msg = submitted_for(a, sa_)
    with db.uow(org_id=a.id) as uow:
        uow.session.get(HeadshotSession, sa_.id).move_to("submitted")
        uow.add_message(msg)
        # no commit: leaving the block rolls both back
    with db.session(org_id=a.id) as s:
        assert s.get(HeadshotSession, sa_.id).state == "onboarding"
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 0
    with db.uow(org_id=a.id) as uow:
        uow.session.get(HeadshotSession, sa_.id).move_to("submitted")
        uow.add_message(msg)
        uow.commit()
    with db.session(all_orgs=True) as s:
        row = s.scalars(select(OutboxMessage)).one()
        assert (row.message_id, row.routing_key, row.sent_at) == (
            msg.message_id,
            SESSION_SUBMITTED.routing_key,
            None,
        )
        assert s.get(HeadshotSession, sa_.id).state == "submitted"


def test_an_outbox_row_holds_the_message_as_written_and_a_second_copy_is_refused(db):
    # On PostgreSQL add_message runs on the driver's cursor (no column types applied): the row must
    # read back the same as through SQLAlchemy, and a driver error must still be SQLAlchemy's.
    a, _b, sa_, _sb = two_orgs(db)
    msg = submitted_for(a, sa_)
    with db.uow(org_id=a.id) as uow:
        uow.add_message(msg)
        uow.commit()
    with db.session(all_orgs=True) as s:
        row = s.scalars(select(OutboxMessage)).one()
        assert (row.org_id, row.session_id, row.body, row.attempts, row.last_error) == (
            a.id,
            sa_.id,
            msg.to_json(),
            0,
            None,
        )
        assert row.created_at == msg.occurred_at and row.created_at.tzinfo is not None
    with db.uow(org_id=a.id) as uow:
        uow.session.get(HeadshotSession, sa_.id).move_to("submitted")
        with pytest.raises(IntegrityError):
            uow.add_message(msg)
    with db.session(all_orgs=True) as s:
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 1
        assert s.get(HeadshotSession, sa_.id).state == "onboarding"


def test_illegal_transitions_are_refused_and_personal_info_erased(db):
    a, _b, sa_, _sb = two_orgs(db)
    with db.uow(org_id=a.id) as uow:
        session = uow.session.get(HeadshotSession, sa_.id)
        with pytest.raises(IllegalTransition):
            session.move_to("completed")
        session.full_name, session.gender, session.eye_color, session.glasses = (
            "Ann",
            "female",
            "green",
            "none",
        )
        session.erase_personal_info()
        uow.commit()
    with db.session(org_id=a.id) as s:
        session = s.get(HeadshotSession, sa_.id)
        assert (session.full_name, session.gender, session.eye_color, session.glasses) == (None,) * 4
        assert session.personal_info_erased_at is not None and session.personal_info_erased_at.tzinfo


def test_get_for_update_serialises_writers_and_stays_tenant_scoped(db):
    """Eight threads each add one to the same row; without the lock some increments are lost."""
    import threading

    a, b, sa_, sb = two_orgs(db)
    gate = threading.Barrier(8)
    failures: list[BaseException] = []

    def increment() -> None:
        try:
            gate.wait()
            with db.uow(org_id=a.id) as uow:
                row = uow.get_for_update(HeadshotSession, sa_.id)
                row.progress_done += 1
                uow.commit()
        except BaseException as exc:  # reported below: a thread's exception would be lost
            failures.append(exc)

    threads = [threading.Thread(target=increment) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures
    with db.session(org_id=a.id) as s:
        row = s.get(HeadshotSession, sa_.id)
        assert row.progress_done == 8
        assert row.state == "onboarding"
    with db.uow(org_id=a.id) as uow:
        assert uow.get_for_update(HeadshotSession, sb.id) is None


def test_the_migrations_build_exactly_the_models(db):
    """Every column, index and constraint of libs/db/models.py exists in the migrated database and
    nothing else does: a model changed without a migration (or the reverse) fails here."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_a_pooled_connection_the_server_ended_is_replaced_without_an_error(pg_url):
    # No pre-ping round trip per checkout: a connection the server hung up on (a restart, an
    # administrator) is seen by its readable socket and replaced before anyone uses it.
    database = Database(pg_url)
    try:
        with database.engine.connect() as conn:
            first = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with database.engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() == first  # pooled
        admin = Database(pg_url)
        assert end_backends(admin, [first]) == 1
        admin.dispose()
        with database.uow(all_orgs=True) as uow:  # no error: another connection was taken
            pid = uow.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert pid != first
    finally:
        database.dispose()


def test_a_connection_idle_for_long_is_pinged_and_handed_out_outside_any_transaction(pg_url, monkeypatch):
    monkeypatch.setattr(database_module, "PING_AFTER_IDLE_SECONDS", 0.0)  # every checkout pings
    database = Database(pg_url)
    try:
        with database.engine.connect() as conn:
            first = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        pings: list[object] = []
        ping = database.engine.dialect.do_ping
        monkeypatch.setattr(database.engine.dialect, "do_ping", lambda c: pings.append(c) or ping(c))
        with database.engine.connect() as conn:
            driver = conn.connection.driver_connection
            assert driver.info.transaction_status == TransactionStatus.IDLE  # the ping left none open
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() == first  # the same one
        assert len(pings) == 1
    finally:
        database.dispose()


def test_outbox_writes_notify_the_relays_on_commit_only(pg_url):
    database = Database(pg_url)
    raw = database.engine.raw_connection()
    try:
        listener = raw.driver_connection
        listener.autocommit = True
        listener.execute(f"LISTEN {OUTBOX_CHANNEL}")

        def notified() -> list[str]:
            return [n.channel for n in listener.notifies(timeout=0.5, stop_after=1)]

        def one(org: str) -> object:
            return new_message(
                SESSION_SUBMITTED,
                org_id=org,
                session_id=org,
                package="starter",
                format="standard",
                styles=["navy:suit"],
                photo_count=1,
            )

        with database.uow(all_orgs=True) as uow:
            uow.add_message(one("a"))
            uow.rollback()
        assert notified() == []
        with database.uow(all_orgs=True) as uow:
            uow.add_message(one("b"))
            uow.add_message(one("c"))
            uow.commit()
        assert notified() == [OUTBOX_CHANNEL]
        assert [n.channel for n in listener.notifies(timeout=0.2)] == []  # once per transaction
    finally:
        raw.invalidate()
        database.dispose()
