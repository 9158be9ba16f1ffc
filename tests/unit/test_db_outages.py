"""A write that records something already done outside the database waits out a short outage."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from libs.db.outages import retry_while_unavailable


def test_a_write_is_tried_again_while_the_database_is_away() -> None:
    calls = []

    def write() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("UPDATE email_sends", {}, Exception("server closed the connection"))
        return "recorded"

    assert retry_while_unavailable(write, seconds=5, pause=0.01) == "recorded"
    assert len(calls) == 3


def test_it_gives_up_after_its_bound_and_never_retries_other_errors() -> None:
    def away() -> None:
        raise OperationalError("UPDATE", {}, Exception("connection refused"))

    with pytest.raises(OperationalError):
        retry_while_unavailable(away, seconds=0.05, pause=0.01)
    calls = []

    def conflict() -> None:
        calls.append(1)
        raise IntegrityError("INSERT", {}, Exception("duplicate key"))

    with pytest.raises(IntegrityError):
        retry_while_unavailable(conflict, seconds=5, pause=0.01)
    assert len(calls) == 1
