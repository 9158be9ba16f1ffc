"""Check a command line's ``--help`` against the argparse parser that really parses it.

    undocumented = help_gaps(build_parser(), top_help, lambda name: help_of(name))
    assert undocumented == []

Everything is derived from the parser: a subcommand added later is checked without touching the
test, and a subcommand or option without a line of help is reported by name.
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
    a help text of its own."""
    gaps = []
    for name, sub in subcommands(parser).items():
        if not re.search(rf"^\s+{re.escape(name)}\s+\S", top_help, re.MULTILINE):
            gaps.append(f"{name}: not listed with a help line in the top-level --help")
        text = sub_help(name)
        for action in sub._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            label = "/".join(action.option_strings) or action.dest
            if not action.help:
                gaps.append(f"{name} {label}: no help text")
            if any(option not in text for option in action.option_strings):
                gaps.append(f"{name} {label}: missing from `{name} --help`")
    return gaps
