"""``python -m services run``: which relay a process asks for, from its flags (the cluster's
processes run ``--own-relay``: tests/system run the whole journey through them)."""

from __future__ import annotations

import pytest

from services.__main__ import build_parser


@pytest.mark.parametrize(
    ("flags", "no_relay", "own_relay"),
    [([], False, False), (["--no-relay"], True, False), (["--own-relay"], False, True)],
    ids=["every-row", "none", "own-rows"],
)
def test_run_takes_the_relay_its_flags_ask_for(flags: list[str], no_relay: bool, own_relay: bool) -> None:
    args = build_parser().parse_args(["run", "--only", "review", "--no-web", *flags])
    assert (args.no_relay, args.own_relay) == (no_relay, own_relay)


def test_no_relay_and_own_relay_together_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["run", "--no-relay", "--own-relay"])
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
