"""A pytest plugin (registered in tests/conftest.py): the system tests' counts at the end of the run.

Registered from the root conftest because under pytest-xdist the controller process loads only
the conftest files of the paths it was given: a hook in tests/system/conftest.py would not run
in ``make test``.
"""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The system tests' counts (lost / duplicated / dead-lettered), shown even when they pass and
    even from pytest-xdist workers (the figures travel in the test reports)."""
    lines = [
        value
        for outcome in ("passed", "failed")
        for report in terminalreporter.stats.get(outcome, [])
        for key, value in getattr(report, "user_properties", [])
        if key == "system-tally" and getattr(report, "when", "") == "call"
    ]
    if lines:
        terminalreporter.section("system tests: lost / duplicated / dead-lettered")
        for line in lines:
            terminalreporter.write_line(str(line))
