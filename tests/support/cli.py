"""Check a command line's ``--help`` against the argparse parser that really parses it.

    undocumented = help_gaps(build_parser(), top_help, lambda name: help_of(name))
    assert undocumented == []

Everything is derived from the parser: a subcommand added later is checked without touching the
test, and a subcommand or option without a line of help is reported by name. A command line
without subcommands has its options checked all the same.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser's subcommands by name (empty when it has none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def help_gaps(parser: argparse.ArgumentParser, top_help: str, sub_help: Callable[[str], str]) -> list[str]:
    """What ``--help`` fails to tell: every subcommand must be listed in ``top_help`` with its
    one-line help, and each subcommand's own help (``sub_help(name)``) must show every option with
    a help text of its own; so must ``top_help`` for the options before the subcommand."""
    gaps = option_gaps(parser, top_help)
    for name, sub in subcommands(parser).items():
        if not re.search(rf"^\s+{re.escape(name)}\s+\S", top_help, re.MULTILINE):
            gaps.append(f"{name}: not listed with a help line in the top-level --help")
        gaps += option_gaps(sub, sub_help(name), name)
    return gaps


def option_gaps(parser: argparse.ArgumentParser, text: str, name: str = "") -> list[str]:
    """What ``text`` (the parser's ``--help``) fails to tell about the parser's own options and
    arguments: each needs a help text of its own, and each option must be shown. Subcommands are
    left to :func:`help_gaps`; ``name`` (the subcommand's) is for the report."""
    gaps = []
    where = f"`{name} --help`" if name else "--help"
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(
            action, argparse._HelpAction | argparse._SubParsersAction
        ):
            continue
        label = " ".join(filter(None, (name, "/".join(action.option_strings) or action.dest)))
        if not action.help:
            gaps.append(f"{label}: no help text")
        if any(option not in text for option in action.option_strings):
            gaps.append(f"{label}: missing from {where}")
    return gaps
