"""libs/db/handoff.py's bookkeeping: which rows reach the relay after a commit, and when it is told
to catch up instead (the relay's side and PostgreSQL: tests/integration/test_bus_handoff.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from libs.contracts import SESSION_SUBMITTED
from libs.db import handoff
from libs.db.handoff import HandedRow


class Taker:
    relay_id = "r" * 32
    lease_seconds = 10.0

    def __init__(self) -> None:
        self.taken: list[list[HandedRow]] = []
        self.catch_ups = 0

    def take(self, rows: list[HandedRow]) -> None:
        self.taken.append(list(rows))

    def catch_up(self) -> None:
        self.catch_ups += 1


@pytest.fixture
def engine() -> Iterator[sa.Engine]:
    engine = sa.create_engine("sqlite://")
    yield engine
    engine.dispose()


@pytest.fixture
def taker(engine: sa.Engine) -> Iterator[Taker]:
    taker = Taker()
    withdraw = handoff.offer(engine, taker)
    assert withdraw is not None
    yield taker
    withdraw()


def row(n: int) -> HandedRow:
    return HandedRow(n, SESSION_SUBMITTED.routing_key, f"m{n}", "{}")


def written(session: Session, taker: Taker, *ids: int) -> None:
    # What UnitOfWork.add_message does after its INSERT of a held row.
    connection = session.connection()
    for n in ids:
        handoff.note_written(session, connection, taker, row(n))


def test_one_taker_per_engine_until_it_withdraws(engine: sa.Engine) -> None:
    first, second = Taker(), Taker()
    withdraw = handoff.offer(engine, first)
    assert withdraw is not None
    try:
        assert handoff.offer(engine, second) is None
        assert handoff.taker_for(engine) is first
    finally:
        withdraw()
    assert handoff.taker_for(engine) is None
    withdraw_second = handoff.offer(engine, second)
    assert withdraw_second is not None
    withdraw()  # the first one's withdrawal does not take the second one's offer away
    assert handoff.taker_for(engine) is second
    withdraw_second()


def test_a_forked_process_holds_nothing_for_its_parents_relay(engine: sa.Engine, taker: Taker) -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the relay's thread did not come with it
        os.write(write, b"none" if handoff.taker_for(engine) is None else b"held")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 4) == b"none"
    assert handoff.taker_for(engine) is taker


def test_the_rows_go_over_once_the_whole_transaction_has_committed(engine: sa.Engine, taker: Taker) -> None:
    with Session(engine) as session:
        written(session, taker, 1)
        savepoint = session.begin_nested()
        written(session, taker, 2)
        savepoint.commit()  # a savepoint's commit commits nothing yet
        assert taker.taken == []
        written(session, taker, 3)
        session.commit()
    assert taker.taken == [[row(1), row(2), row(3)]]
    assert taker.catch_ups == 0


def test_a_rolled_back_transaction_hands_nothing(engine: sa.Engine, taker: Taker) -> None:
    with Session(engine) as session:
        written(session, taker, 1)
        session.rollback()
        written(session, taker, 2)  # the next transaction of the same session
        session.commit()
    assert taker.taken == [[row(2)]]
    assert taker.catch_ups == 0


def test_a_rolled_back_savepoint_makes_the_relay_catch_up_instead(engine: sa.Engine, taker: Taker) -> None:
    with Session(engine) as session:
        written(session, taker, 1)
        savepoint = session.begin_nested()
        written(session, taker, 2)
        savepoint.rollback()  # row 2 is gone, row 1 is not: the relay reads what is there
        written(session, taker, 3)
        session.commit()
    assert taker.taken == []
    assert taker.catch_ups == 1


def test_a_session_that_only_joined_its_connections_transaction_hands_nothing_at_its_commit(
    engine: sa.Engine, taker: Taker
) -> None:
    with engine.connect() as connection:
        outer = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        written(session, taker, 1)
        session.commit()  # the outer transaction is still open: nothing committed
        assert taker.taken == []
        assert taker.catch_ups == 1  # the relay's rounds take the rows once they are committed
        outer.rollback()
        session.close()
