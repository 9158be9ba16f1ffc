"""``python -m services run``: which relay a process asks for, from its flags (the cluster's
processes run ``--own-relay``: tests/system run the whole journey through them)."""

from __future__ import annotations

import pytest

from services.__main__ import build_parser
from services.relaying import relay_choice, relay_flags


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


@pytest.mark.parametrize(
    ("flags", "choice"),
    [
        ([], {"relay": True, "own_rows_only": False}),
        (["--no-relay"], {"relay": False, "own_rows_only": False}),
        (["--own-relay"], {"relay": True, "own_rows_only": True}),
    ],
    ids=["every-row", "none", "own-rows"],
)
def test_the_choice_goes_to_the_launcher_and_is_handed_on_unchanged(
    flags: list[str], choice: dict[str, bool]
) -> None:
    """What ``launcher.start`` is given, and the flags a command that hands the choice on to
    ``python -m services run`` (preprocess, notification) passes: the ones it was given."""
    args = build_parser().parse_args(["run", *flags])
    assert relay_choice(args) == choice
    assert relay_flags(args) == flags
