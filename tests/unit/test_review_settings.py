"""The settings page: every change audited (who, when, before, after) and listed; bad values are
per-field errors with nothing saved; the webhook secret and API keys are shown once."""

from __future__ import annotations

import re

from sqlalchemy import select

from libs.db import AuditLog, Organization, OrgApiKey
from libs.db.demo import DemoData
from tests.support.review import (  # noqa: F401  (fixtures)
    app_fixture,
    blobs_fixture,
    console_sign_in,
    db_fixture,
    demo_fixture,
    review_settings_fixture,
)

FORM = {
    "retention_days": "45",
    "manual_review": "on",
    "allowed_styles": ["navy:shirt", "white:knit", "studio-grey:suit"],
    "webhook_url": "https://hooks.example.com/h",
}


def org_of(db, demo: DemoData) -> Organization:
    with db.session(org_id=demo.org_id) as s:
        return s.get(Organization, demo.org_id)


def audits(db, demo: DemoData) -> list[AuditLog]:
    with db.session(all_orgs=True) as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.org_id == demo.org_id).order_by(AuditLog.id)))


def test_a_change_is_saved_audited_and_listed(app, review_settings, db, demo: DemoData):
    client, csrf = console_sign_in(app, review_settings, demo.admin)
    response = client.post("/settings", data={"csrf_token": csrf, **FORM}, follow_redirects=True)
    assert response.status_code == 200 and "Settings saved." in response.get_data(as_text=True)
    org = org_of(db, demo)
    assert (org.manual_review, org.renewal, org.retention_days) == (True, False, 45)
    # The package's pre-selected styles are always allowed, whatever was ticked.
    assert set(org.allowed_styles) >= {"navy:shirt", "white:knit", "office:blazer", "navy:suit"}
    [entry] = audits(db, demo)
    assert (entry.action, entry.actor_id) == ("settings.change", demo.admin.id)
    assert entry.detail["before"]["manual_review"] is False and entry.detail["after"]["manual_review"] is True
    assert entry.detail["before"]["retention_days"] == 30 and entry.detail["after"]["retention_days"] == 45
    assert "renewal" not in entry.detail["after"]  # only what changed
    page = client.get("/settings").get_data(as_text=True)
    assert "settings.change" in page and demo.admin.email in page
    # Saving the same values again changes nothing and audits nothing.
    client.post("/settings", data={"csrf_token": csrf, **FORM})
    assert len(audits(db, demo)) == 1


def test_bad_values_are_field_errors_and_nothing_is_saved(app, review_settings, db, demo: DemoData):
    client, csrf = console_sign_in(app, review_settings, demo.admin)
    for field, value, message in (
        ("retention_days", "0", "Between 1 and 3650 days."),
        ("retention_days", "soon", "A whole number of days."),
        ("webhook_url", "ftp://x", "An http(s) address"),
        ("allowed_styles", ["navy:nothing"], "Unknown style"),
        ("allowed_styles", ["navy:suit"], "at least one style"),
    ):
        response = client.post("/settings", data={"csrf_token": csrf, **FORM, field: value})
        assert response.status_code == 422, field
        assert message in response.get_data(as_text=True), field
    assert org_of(db, demo).retention_days == 30 and audits(db, demo) == []


def test_the_webhook_secret_is_shown_once_and_rotates(app, review_settings, db, demo: DemoData):
    client, csrf = console_sign_in(app, review_settings, demo.admin)
    first = client.post("/settings/webhook-secret", data={"csrf_token": csrf}).get_data(as_text=True)
    secret = re.search(r'id="new-secret">([^<]+)<', first).group(1)
    assert org_of(db, demo).webhook_secret == secret
    assert secret not in client.get("/settings").get_data(as_text=True)
    client.post("/settings/webhook-secret", data={"csrf_token": csrf})
    assert org_of(db, demo).webhook_secret not in (None, secret)
    entries = audits(db, demo)
    assert [e.action for e in entries] == ["settings.webhook_secret"] * 2
    assert all(secret not in str(e.detail) for e in entries)


def test_api_keys_are_shown_once_stored_hashed_and_revocable(app, review_settings, db, demo: DemoData):
    client, csrf = console_sign_in(app, review_settings, demo.admin)
    assert client.post("/settings/api-keys", data={"csrf_token": csrf, "name": ""}).status_code == 422
    page = client.post("/settings/api-keys", data={"csrf_token": csrf, "name": "HR sync"}).get_data(
        as_text=True
    )
    key = re.search(r'id="new-key">([^<]+)<', page).group(1)
    with db.session(all_orgs=True) as s:
        row = s.scalar(select(OrgApiKey))
        assert row.key_hash != key and key not in row.key_hash and row.last_used_at is None
    tool = app.test_client()
    bearer = {"Authorization": f"Bearer {key}"}
    assert tool.get("/api/v1/org/settings", headers=bearer).status_code == 200
    assert "never" not in client.get("/settings").get_data(as_text=True)  # last used is shown
    client.post(f"/settings/api-keys/{row.id}/revoke", data={"csrf_token": csrf})
    refused = tool.get("/api/v1/org/settings", headers=bearer)
    assert refused.status_code == 401 and refused.json["error"]["code"] == "unauthorized"
    assert tool.get("/api/v1/org/settings", headers={"Authorization": "Bearer hsk_nope"}).status_code == 401


def test_webhook_deliveries_are_listed_and_sent_again_on_request(app, review_settings, db, demo: DemoData):
    from datetime import UTC, datetime, timedelta

    from libs.contracts import SESSION_COMPLETED, SESSION_FAILED
    from libs.db import WebhookDelivery

    completed, failed = SESSION_COMPLETED.routing_key, SESSION_FAILED.routing_key

    long_ago = datetime.now(UTC) - timedelta(days=1)
    with db.uow(all_orgs=True) as uow:
        ours = WebhookDelivery(
            org_id=demo.org_id,
            message_id="m-1",
            event=completed,
            body="{}",
            status="failed",
            step=5,
            attempts=6,
            next_attempt_at=None,
            last_error="HTTP 503 from hooks.example.com",
        )
        theirs = WebhookDelivery(
            org_id=demo.other_org_id,
            message_id="m-2",
            event=failed,
            body="{}",
            status="failed",
            step=5,
            attempts=6,
            next_attempt_at=long_ago,
        )
        uow.session.add_all([ours, theirs])
        uow.commit()
    client, csrf = console_sign_in(app, review_settings, demo.admin)
    page = client.get("/settings").get_data(as_text=True)
    assert "HTTP 503 from hooks.example.com" in page and completed in page
    assert failed not in page  # another organization's delivery is not shown

    answer = client.post(f"/settings/webhook-deliveries/{ours.id}/resend", data={"csrf_token": csrf})
    assert answer.status_code == 303
    with db.session(all_orgs=True) as s:
        again = s.get(WebhookDelivery, ours.id)
        assert (again.status, again.step) == ("pending", 0) and again.next_attempt_at is not None
    [entry] = [a for a in audits(db, demo) if a.action == "webhook.resend"]
    assert (entry.actor_id, entry.target) == (demo.admin.id, str(ours.id))
    assert entry.detail["before"] == {"status": "failed"} and entry.detail["after"] == {"status": "pending"}

    # Another organization's delivery, or no CSRF token: refused, nothing changed.
    assert (
        client.post(f"/settings/webhook-deliveries/{theirs.id}/resend", data={"csrf_token": csrf}).status_code
        == 404
    )
    assert client.post(f"/settings/webhook-deliveries/{ours.id}/resend").status_code == 400
    # An id no row can have (beyond the column's 64 bits) is no such delivery, not a database error.
    too_big = f"/settings/webhook-deliveries/{2**63}/resend"
    assert client.post(too_big, data={"csrf_token": csrf}).status_code == 404
    with db.session(all_orgs=True) as s:
        assert s.get(WebhookDelivery, theirs.id).status == "failed"


def test_a_test_event_goes_through_the_delivery_ledger_signed_and_its_outcome_is_listed(
    app, review_settings, db, demo: DemoData
):
    import json

    from libs.contracts import WEBHOOK_TESTED
    from libs.db import WebhookDelivery
    from services.notification.webhooks.dispatcher import WebhookDispatcher
    from tests.support.notification import WebhookReceiver, body_json, verify_headshots_webhook

    receiver = WebhookReceiver(status=204, answer=b"")
    client, csrf = console_sign_in(app, review_settings, demo.admin)
    assert "Send a test event" not in client.get("/settings").get_data(as_text=True)  # no endpoint yet
    refused = client.post("/settings/webhook-test", data={"csrf_token": csrf})
    assert refused.status_code == 409 and "Set a webhook endpoint" in refused.get_data(as_text=True)
    client.post("/settings", data={"csrf_token": csrf, **FORM, "webhook_url": receiver.url})
    no_secret = client.post("/settings/webhook-test", data={"csrf_token": csrf})
    assert no_secret.status_code == 409 and "signing secret" in no_secret.get_data(as_text=True)
    page = client.post("/settings/webhook-secret", data={"csrf_token": csrf}).get_data(as_text=True)
    secret = re.search(r'id="new-secret">([^<]+)<', page).group(1)
    assert client.post("/settings/webhook-test").status_code == 400  # no CSRF token: nothing queued

    sent = client.post("/settings/webhook-test", data={"csrf_token": csrf}, follow_redirects=True)
    assert sent.status_code == 200 and "test event is on its way" in sent.get_data(as_text=True)
    assert 'status-pending">pending<' in sent.get_data(as_text=True)  # listed at once
    again = client.post("/settings/webhook-test", data={"csrf_token": csrf})
    assert again.status_code == 409 and "already on its way" in again.get_data(as_text=True)
    with db.session(all_orgs=True) as s:
        [delivery] = s.scalars(select(WebhookDelivery)).all()
    assert (delivery.org_id, delivery.event, delivery.session_id) == (
        demo.org_id,
        WEBHOOK_TESTED.routing_key,
        None,
    )
    [entry] = [a for a in audits(db, demo) if a.action == "webhook.test"]
    assert entry.detail["before"] == {} and entry.detail["after"] == {"status": "pending"}

    # The notification service's dispatcher posts it like any delivery, to a real endpoint, signed.
    dispatcher = WebhookDispatcher(db, review_settings.replace(WEBHOOK_ALLOW_PRIVATE=True))
    try:
        assert dispatcher.run_once(wait_for_attempts=True) == 1
    finally:
        dispatcher.close()
        receiver.close()
    [received] = receiver.received
    assert verify_headshots_webhook(secret, received.headers, received.body)
    assert received.headers["X-Headshots-Event"] == WEBHOOK_TESTED.routing_key
    body = body_json(received)
    assert (body["type"], body["org_id"], body["session_id"], body["data"]["test"]) == (
        WEBHOOK_TESTED.routing_key,
        demo.org_id,
        None,
        True,
    )
    assert body["id"] == delivery.message_id and json.loads(delivery.body) == body
    listed = client.get("/settings").get_data(as_text=True)
    assert 'status-delivered">delivered<' in listed
