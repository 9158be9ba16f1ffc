"""``python -m services.notification``: help, previews of every e-mail, listing and resending
webhook deliveries from the command line (in-process, on a real SQLite file)."""

from __future__ import annotations

import pytest

from libs.db import AuditLog, Database, WebhookAttempt, WebhookDelivery, utcnow
from libs.db.webhooks import VIA_CLI
from services.notification.__main__ import build_parser, main
from services.notification.emails import SUBJECTS
from services.notification.webhooks.deliveries import WebhookRecorder
from tests.support.cli import help_gaps, subcommands
from tests.support.notification import ManualClock, seed_people, session_events


def help_of(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_help_lists_every_subcommand_and_option_the_parser_has(capsys):
    parser = build_parser()
    assert set(subcommands(parser)) >= {"serve", "webhooks", "resend", "preview"}
    assert help_gaps(parser, help_of(capsys), lambda name: help_of(capsys, name)) == []


@pytest.mark.parametrize("template", sorted(SUBJECTS))
def test_every_email_previews_in_html_and_text(template, capsys, monkeypatch):
    monkeypatch.setenv("PUBLIC_URL", "https://headshots.example")
    assert main(["preview", template]) == 0
    html = capsys.readouterr().out
    assert (
        html.startswith("<!doctype html>")
        and "Acme Corporation" in html
        and "https://headshots.example/" in html
    )
    assert main(["preview", template, "--text"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Hello Bea,") and "<" not in text


def test_webhooks_lists_and_resend_restarts_a_delivery(sqlite_url, capsys, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    db = Database(sqlite_url)
    try:
        people = seed_people(db, webhook_url="https://hooks.example.com/in")
        WebhookRecorder(db, ManualClock()).record(session_events(people)["completed"])
        with db.uow(all_orgs=True) as uow:
            delivery = uow.session.query(WebhookDelivery).one()
            delivery.status, delivery.step = "failed", 5
            uow.session.add(
                WebhookAttempt(
                    org_id=people.org_id,
                    delivery_id=delivery.id,
                    attempt=1,
                    attempted_at=utcnow(),
                    url="https://hooks.example.com/in",
                    status_code=503,
                    latency_ms=12.5,
                    error="the endpoint answered 503",
                )
            )
            uow.commit()
        assert main(["webhooks", "--org", people.org_id]) == 0
        listed = capsys.readouterr().out
        assert "failed" in listed and "#1 " in listed and "503 12.5 ms the endpoint answered 503" in listed
        assert main(["resend", "--org", people.other_org_id, str(delivery.id)]) == 2  # another tenant's
        assert main(["resend", "--org", people.org_id, str(delivery.id)]) == 0
        with db.session(all_orgs=True) as s:
            again = s.get(WebhookDelivery, delivery.id)
            assert again is not None and (again.status, again.step) == ("pending", 0)
            # audited as the console's resend is, the system as the actor and the CLI named
            [entry] = s.query(AuditLog).all()  # the refused resend left nothing
            assert (entry.org_id, entry.actor_id, entry.action, entry.target) == (
                people.org_id,
                None,
                "webhook.resend",
                str(delivery.id),
            )
            assert entry.detail == {
                "before": {"status": "failed"},
                "after": {"status": "pending"},
                "event": delivery.event,
                "via": VIA_CLI,
            }
    finally:
        db.dispose()
