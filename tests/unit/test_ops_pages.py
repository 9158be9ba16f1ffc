"""The machinery pages on the embedded backends (memory:// broker, SQLite): queues with the last
hour's chart, dead letters (replay, discard, audited), workers, mail, audit log; the ops worker's
round, its /metrics gauges, and the CLI."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from libs.contracts import SESSION_FAILED, new_message
from libs.db import Database, ProcessedMessage, QueueSample, WorkerHeartbeat
from libs.db.demo import DemoData
from libs.messaging import Bus, Permanent, list_dead_letters, queue_depths
from libs.messaging.testing import running, wait_for
from libs.settings import Settings
from services.ops.__main__ import build_parser as build_ops_parser
from services.ops.__main__ import main as ops_main
from services.ops.handlers import ops_round
from tests.support.cli import help_gaps, subcommands
from tests.support.ops import (  # noqa: F401 (fixtures)
    OpsClient,
    audit_actions,
    demo_fixture,
    make_session,
    ops_app_fixture,
    ops_blobs_fixture,
    ops_db_fixture,
    ops_settings_fixture,
    support_fixture,
)

DEAD = "ops.session.failed.dead"


def _dead_letter(ops_settings: Settings, ops_db: Database, demo: DemoData, n: int = 1) -> list[str]:
    """Dead-letter ``n`` session.failed messages in the ops queue with a handler that refuses them."""
    bus = Bus(ops_settings, ops_db)
    bus.declare()

    def refuse(message, *, uow):  # type: ignore[no-untyped-def]
        raise Permanent("refused on purpose")

    ids = []
    with running(bus.consumer("ops", {SESSION_FAILED: refuse})):
        publisher = bus.publisher("test")
        for _ in range(n):
            m = new_message(SESSION_FAILED, org_id=demo.org_id, session_id="s", stage="training", reason="x")
            publisher.publish(m)
            ids.append(m.message_id)
        wait_for(lambda: queue_depths(ops_settings).get(DEAD) == n, "the dead letters")
        publisher.close()
    return ids


def test_dead_letters_are_listed_replayed_and_discarded_with_an_audit(
    support: OpsClient, ops_settings: Settings, ops_db: Database, demo: DemoData
) -> None:
    labels = {"queue": "ops.session.failed", "outcome": "dead_lettered"}
    before = REGISTRY.get_sample_value("headshots_messages_total", labels) or 0
    first, second, third = _dead_letter(ops_settings, ops_db, demo, n=3)
    assert REGISTRY.get_sample_value("headshots_messages_total", labels) == before + 3  # /metrics counts them
    overview = support.get("/dead-letters").get_data(as_text=True)
    assert re.search(rf"{DEAD}</code></a></td><td>3<", overview)
    listing = support.get(f"/dead-letters/{DEAD}").get_data(as_text=True)
    assert first in listing and "refused on purpose" in listing and "occurred_at" in listing  # the body

    assert support.post(f"/dead-letters/{DEAD}/replay", {"message_id": first}).status_code == 303
    assert {d.message_id for d in list_dead_letters(ops_settings, DEAD)} == {second, third}
    assert queue_depths(ops_settings)["ops.session.failed"] == 1  # back in its consumer queue

    support.post(f"/dead-letters/{DEAD}/discard", {"message_id": second})
    support.post(f"/dead-letters/{DEAD}/discard", {"message_id": second})  # gone already: said so
    assert "no longer there" in support.get(f"/dead-letters/{DEAD}").get_data(as_text=True)
    support.post(f"/dead-letters/{DEAD}/replay")  # all that is left
    assert list_dead_letters(ops_settings, DEAD) == []
    assert audit_actions(ops_db, DEAD) == [
        "dead_letter.replayed",
        "dead_letter.discarded",
        "dead_letter.discarded",
        "dead_letter.replayed",
    ]
    assert support.get("/dead-letters/not-a-queue.dead").status_code == 404
    assert support.post("/dead-letters/nope/replay").status_code == 404


def test_queues_page_draws_the_sampled_depths(
    support: OpsClient, ops_settings: Settings, ops_db: Database, demo: DemoData
) -> None:
    _dead_letter(ops_settings, ops_db, demo, n=2)
    now = datetime.now(UTC)
    ops_round(ops_settings, ops_db, now - timedelta(minutes=20))
    ops_round(ops_settings, ops_db, now)
    with ops_db.session(all_orgs=True) as s:  # handled messages make the throughput chart
        s.add_all(
            ProcessedMessage(
                consumer="preprocess.session.approved",
                message_id=str(i),
                processed_at=now - timedelta(minutes=1),
            )
            for i in range(7)
        )
        s.commit()
    page = support.get("/queues").get_data(as_text=True)
    assert 'preprocess.session.approved <span class="muted small">now 7, peak 7' in page  # the last 5 minutes
    assert "<svg" in page and "<polyline" in page and f"{DEAD} <span" in page  # in the legend
    assert "style=" not in page and "<script>" not in page  # the strict CSP allows neither
    assert re.search(rf"<code>{DEAD}</code></td><td>2<", page)
    with ops_db.session(all_orgs=True) as s:  # samples older than two hours are pruned
        s.add(QueueSample(sampled_at=now - timedelta(hours=3), queue="old", ready=1))
        s.commit()
    ops_round(ops_settings, ops_db, now)
    with ops_db.session(all_orgs=True) as s:
        assert s.query(QueueSample).filter_by(queue="old").count() == 0


def test_ops_round_sets_the_metrics_gauges(ops_settings: Settings, ops_db: Database, demo: DemoData) -> None:
    make_session(ops_db, demo, "failed")
    make_session(ops_db, demo, "queued", events=[])
    with ops_db.uow(all_orgs=True) as uow:  # an event the relay has not published for 90 s
        m = new_message(SESSION_FAILED, org_id=demo.org_id, session_id="s", stage="queued", reason="x")
        uow.add_message(replace(m, occurred_at=datetime.now(UTC) - timedelta(seconds=90)))
        uow.commit()
    ops_round(ops_settings, ops_db, datetime.now(UTC))
    assert REGISTRY.get_sample_value("headshots_sessions", {"state": "failed"}) == 1
    assert REGISTRY.get_sample_value("headshots_sessions", {"state": "queued"}) == 1
    assert REGISTRY.get_sample_value("headshots_outbox_lag_seconds") >= 90  # type: ignore[operator]


def test_workers_page_shows_alive_and_gone(
    support: OpsClient, ops_db: Database, ops_settings: Settings
) -> None:
    now = datetime.now(UTC)
    with ops_db.session(all_orgs=True) as s:
        s.add(
            WorkerHeartbeat(
                id="preprocess@a:1:x",
                service="preprocess",
                host="a",
                pid=1,
                started_at=now,
                last_seen_at=now,
                handled=7,
                failed=1,
                current_session_id="11111111-2222-3333-4444-555555555555",
            )
        )
        s.add(
            WorkerHeartbeat(
                id="generation@b:2:y",
                service="generation",
                host="b",
                pid=2,
                started_at=now,
                last_seen_at=now - timedelta(minutes=10),
                handled=3,
                failed=0,
            )
        )
        s.commit()
    page = support.get("/workers").get_data(as_text=True)
    rows = re.findall(r'<tr class="worker( gone)?">\s*<td>(\w+)</td>', page)
    assert rows == [(" gone", "generation"), ("", "preprocess")]
    assert "11111111" in page
    with ops_db.session(all_orgs=True) as s:  # gone for two days: forgotten by the next round
        s.add(
            WorkerHeartbeat(
                id="old@c:3:z",
                service="old",
                host="c",
                pid=3,
                started_at=now,
                last_seen_at=now - timedelta(days=2),
            )
        )
        s.commit()
    ops_round(ops_settings, ops_db, now)
    assert [
        r[1]
        for r in re.findall(
            r'<tr class="worker( gone)?">\s*<td>(\w+)</td>', support.get("/workers").get_data(as_text=True)
        )
    ] == ["generation", "preprocess"]


def test_mail_and_webhook_pages_start_empty(support: OpsClient, ops_settings: Settings) -> None:
    # (what they list is in test_ops_deliveries.py) a stray .eml file is not an e-mail we recorded
    ops_settings.mail_dir.mkdir(parents=True)
    (ops_settings.mail_dir / "0001-ready.eml").write_text("To: bea@acme.example\nSubject: Hi\n\nHello\n")
    assert "No e-mail matches." in support.get("/mail").get_data(as_text=True)
    assert "No webhook delivery matches." in support.get("/webhooks").get_data(as_text=True)


def test_audit_log_filters(support: OpsClient, ops_db: Database, demo: DemoData) -> None:
    failed = make_session(ops_db, demo, "failed")
    moving = make_session(ops_db, demo, "training", user=demo.other_employee)
    support.post(f"/sessions/{failed}/retry")
    support.post(f"/sessions/{moving}/fail", {"reason": "dead node"})
    everything = support.get("/audit").get_data(as_text=True)
    assert "session.retried" in everything and "session.failed_by_support" in everything
    only_fail = support.get("/audit?action=session.failed").get_data(as_text=True)
    assert "session.failed_by_support" in only_fail and "session.retried" not in only_fail
    by_org = support.get(f"/audit?org={demo.other_org_id}").get_data(as_text=True)
    assert "dead node" in by_org and "session.retried" not in by_org
    assert support.get("/audit?page=x").status_code == 400
    # A page no list reaches (its offset beyond the database's integers): refused, not a 500.
    too_far = support.get(f"/audit?page={10**20}")
    assert too_far.status_code == 400 and "100,000" in too_far.get_data(as_text=True)


def test_cli_invite_and_check(
    ops_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    ops_app,
    demo: DemoData,
    ops_db: Database,
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("VAR_DIR", ops_settings.VAR_DIR)
    monkeypatch.setenv("DATABASE_URL", ops_settings.DATABASE_URL)
    monkeypatch.setenv("SECRET_KEY", ops_settings.SECRET_KEY)
    assert ops_main(["invite", "--email", "Sam@Headshots.example", "--name", "Sam"]) == 0
    link = capsys.readouterr().out.strip()
    assert "/ops/invite/" in link
    client = ops_app.test_client()
    assert client.get(link.split("/ops", 1)[1]).status_code == 303
    assert client.get("/").status_code == 200
    assert ops_main(["invite", "--email", demo.employees[0].email]) == 2  # an org member is not support
    assert ops_main(["invite", "--email", "nonsense"]) == 2
    capsys.readouterr()
    stuck = make_session(ops_db, demo, "queued", idle=timedelta(days=1))
    assert ops_main(["check"]) == 0
    assert f"1 re-queued, 0 flagged\n  re-queued {stuck}" in capsys.readouterr().out


def test_cli_help_lists_every_subcommand_and_option_the_parser_has(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def help_of(*args: str) -> str:
        with pytest.raises(SystemExit) as done:
            ops_main([*args, "--help"])
        assert done.value.code == 0
        return capsys.readouterr().out

    parser = build_ops_parser()
    assert set(subcommands(parser)) >= {"serve", "invite", "check", "retention"}
    assert help_gaps(parser, help_of(), help_of) == []
