"""Every ``>>>`` example in a docstring under libs/ and services/ runs and shows what it says.

The modules are found by reading the files, so a new example is tested the day it is written; an
example that cannot run (it needs a GPU, a model folder, a photo) belongs in a plain ``::`` code
block instead.
"""

from __future__ import annotations

import doctest
import importlib
import io
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


def modules_with_examples() -> list[str]:
    paths = sorted(p for top in ("libs", "services") for p in (ROOT / top).rglob("*.py"))
    names = []
    for path in paths:
        if ">>> " in path.read_text(encoding="utf-8"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = modules_with_examples()


def test_examples_are_found():
    # The finder above is what makes the test below mean something: it must see the known ones.
    assert {"libs.catalog", "services.generation.plan"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_the_examples_in_the_docstrings_run(name):
    module = importlib.import_module(name)
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    tests = doctest.DocTestFinder().find(module, name)
    for test in tests:
        runner.run(test, out=out.write)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0, f"{name} has '>>> ' but no example doctest can find: make it a :: block"
    assert result.failed == 0, out.getvalue()
