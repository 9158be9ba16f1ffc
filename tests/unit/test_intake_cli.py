"""``python -m services.intake``: --help, and the invite command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from libs.db import Database, Role, User
from libs.db.demo import seed_demo
from libs.settings import ROOT, Settings
from libs.web import read_invite
from services.intake.__main__ import build_parser, main
from tests.support.cli import help_gaps, subcommands


def test_help_lists_every_subcommand_and_option_the_parser_has(capsys):
    result = subprocess.run(
        [sys.executable, "-m", "services.intake", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr

    def sub_help(name: str) -> str:
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0
        return capsys.readouterr().out

    parser = build_parser()
    assert set(subcommands(parser)) >= {"serve", "invite"}
    assert help_gaps(parser, result.stdout, sub_help) == []


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    values = {
        "VAR_DIR": str(tmp_path / "var"),
        "SECRET_KEY": "cli-secret",
        "PUBLIC_URL": "https://photos.example",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return Settings.from_env()


def test_invite_creates_the_employee_and_prints_a_working_link(env: Settings, capsys):
    assert main(["invite", "--org", "demo", "--email", "x@acme.example"]) == 2  # no such org yet
    assert "no organization" in capsys.readouterr().err
    db = Database(env.database_url)
    demo = seed_demo(db)
    assert (
        main(["invite", "--org", "demo", "--email", "New.Person@Acme.example", "--name", "New Person"]) == 0
    )
    link = capsys.readouterr().out.strip()
    assert link.startswith("https://photos.example/invite/")
    claims = read_invite(env, link.rsplit("/", 1)[1])
    with db.session(all_orgs=True) as s:
        user = s.get(User, claims["user_id"])
        assert (user.email, user.display_name, user.role, user.org_id) == (
            "new.person@acme.example",
            "New Person",
            Role.EMPLOYEE.value,
            demo.org_id,
        )
    # Asking again links the same person.
    assert main(["invite", "--org", "demo", "--email", "new.person@acme.example"]) == 0
    assert read_invite(env, capsys.readouterr().out.strip().rsplit("/", 1)[1])["user_id"] == user.id
    with db.session(all_orgs=True) as s:
        assert len(s.scalars(select(User).where(User.email == "new.person@acme.example")).all()) == 1
    db.dispose()
