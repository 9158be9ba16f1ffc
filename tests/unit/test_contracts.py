"""The contracts: every event declared once, envelopes validated, legal transitions only."""

from __future__ import annotations

import ast
import json
import pathlib
import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from libs.contracts import (
    EVENTS,
    GATEWAY_EVENTS,
    MEMBER_INVITED,
    MODELS_RETIRED,
    SESSION_FAILED,
    SESSION_SUBMITTED,
    SUBSCRIPTIONS,
    WEBHOOK_TESTED,
    ContractError,
    IllegalTransition,
    SessionState,
    can_transition,
    decode_message,
    new_message,
    queue_name,
    transition,
)
from libs.contracts.states import LEGAL_TRANSITIONS

ROOT = pathlib.Path(__file__).resolve().parents[2]
DESIGN_EVENTS = {
    "session.submitted",
    "session.approved",
    "session.rejected",
    "photos.processed",
    "model.trained",
    "headshot.generated",
    "session.completed",
    "session.failed",
    "models.retired",
    "session.progress",
    "member.invited",
    "webhook.tested",  # not in the design's table: a webhook type only, never on the bus
}


def submitted(**overrides):
    data = dict(package="executive", format="portrait", styles=["navy:suit"], photo_count=3)
    data.update(overrides)
    return new_message(SESSION_SUBMITTED, org_id="org-1", session_id="sess-1", **data)


def test_every_event_of_the_design_is_declared_once():
    assert set(EVENTS) == DESIGN_EVENTS
    assert len({e.name for e in EVENTS.values()}) == len(EVENTS)


def test_a_message_round_trips_through_json():
    msg = submitted()
    back = decode_message(msg.to_json().encode())
    assert back.event is SESSION_SUBMITTED
    assert back.message_id == msg.message_id
    assert back.data == msg.data
    assert back.occurred_at == msg.occurred_at
    body = json.loads(msg.to_json())
    assert set(body) == {"message_id", "type", "version", "occurred_at", "org_id", "session_id", "data"}
    uuid.UUID(body["message_id"])


@pytest.mark.parametrize(
    "body, fragment",
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b"{}", "invalid envelope"),
    ],
)
def test_malformed_bodies_are_contract_errors(body, fragment):
    with pytest.raises(ContractError, match=fragment):
        decode_message(body)


def test_unknown_type_wrong_version_and_invalid_data_are_refused():
    good = json.loads(submitted().to_json())
    for change, fragment in [
        ({"type": "session.exploded"}, "invalid envelope"),
        ({"version": 99}, "version 99"),
        ({"data": {"package": "x"}}, "invalid session.submitted body"),
        ({"data": {**good["data"], "full_name": "Ann"}}, "invalid session.submitted body"),
        ({"session_id": None}, "needs a session_id"),
        ({"occurred_at": "2026-11-24T03:00:00"}, "invalid envelope"),
        ({"extra": 1}, "invalid envelope"),
    ]:
        with pytest.raises(ContractError, match=fragment):
            decode_message({**good, **change})


def test_events_never_carry_personal_info():
    personal = {"full_name", "name", "gender", "eye_color", "glasses", "email"}
    for event in EVENTS.values():
        assert not personal & set(event.schema().fields), event.routing_key


def test_producers_cannot_build_invalid_messages():
    with pytest.raises(ContractError):
        submitted(photo_count=0)
    with pytest.raises(ContractError):
        submitted(styles=[])
    with pytest.raises(ContractError):
        new_message(SESSION_FAILED, org_id="o", session_id="s", stage="nowhere", reason="x")


def test_each_event_schema_is_built_once_and_keeps_nothing_between_messages():
    """Schemas are shared (building one per message was most of a message's cost): a refused message
    must leave nothing behind for the next one, in any thread."""
    assert SESSION_SUBMITTED.loader is SESSION_SUBMITTED.loader
    good = json.loads(submitted().to_json())
    bodies = [
        ({**good, "data": {**good["data"], "photo_count": 0}}, "photo_count"),
        (good, None),
        ({**good, "data": {**good["data"], "styles": []}}, "styles"),
        ({**good, "org_id": ""}, "org_id"),
    ] * 50

    def decode(case):
        body, field = case
        try:
            msg = decode_message(body)
        except ContractError as exc:
            return field, set(exc.errors)
        return field, set(msg.data)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(decode, bodies))
    for field, keys in results:
        assert keys == ({field} if field else set(good["data"]))


def test_org_wide_event_needs_no_session():
    msg = new_message(MODELS_RETIRED, org_id="o", session_id=None, person_model_ids=["m1"])
    assert decode_message(msg.to_json()).session_id is None


def test_queues_are_named_after_consumer_and_event():
    assert queue_name("review", SESSION_SUBMITTED) == "review.session.submitted"
    for service, events in SUBSCRIPTIONS.items():
        assert events, service
        assert all(e.routing_key in EVENTS for e in events)
    assert SESSION_SUBMITTED in GATEWAY_EVENTS
    # the gateway relays every per-session event (progress included), never org-wide ones
    assert {e.routing_key for e in GATEWAY_EVENTS} == set(EVENTS) - {
        MODELS_RETIRED.routing_key,
        MEMBER_INVITED.routing_key,
        WEBHOOK_TESTED.routing_key,
    }


def test_happy_path_is_legal_and_skipping_is_not():
    path = [
        "onboarding",
        "submitted",
        "in_review",
        "queued",
        "preprocessing",
        "training",
        "generating",
        "completed",
    ]
    for current, target in zip(path, path[1:], strict=False):
        assert transition(current, target) == SessionState(target)
    assert transition("submitted", "queued") is SessionState.QUEUED  # no manual review
    with pytest.raises(IllegalTransition, match="'onboarding' to 'completed'"):
        transition("onboarding", "completed")
    assert not can_transition("completed", "generating")
    assert not can_transition("deleted", "onboarding")
    assert not can_transition("nonsense", "submitted")
    assert can_transition("in_review", "rejected") and can_transition("rejected", "onboarding")


def test_every_state_has_a_transition_entry():
    assert set(LEGAL_TRANSITIONS) == set(SessionState)


def test_no_routing_key_is_written_outside_contracts():
    """A string literal equal to a routing key may only stand in libs/contracts (docstrings showing an
    example payload are prose, not literals, and are allowed)."""
    offenders = []
    for path in _our_files("*.py"):
        if "contracts" in path.parts or path.name == "test_contracts.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in EVENTS:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not offenders, "routing keys written as strings:\n" + "\n".join(offenders)


# A JavaScript string: "…", '…' or `…` (escapes kept; enough to find a literal routing key).
JS_STRING = re.compile(r"""(["'`])((?:\\.|(?!\1)[^\\\n])*)\1""")


def test_no_routing_key_is_written_in_our_javascript():
    """Pages get event names from the server (rendered from libs/contracts), never as literals. Fetched
    libraries (static/vendor/, node_modules/) are not ours and are not scanned."""
    scanned, offenders = 0, []
    for path in _our_files("*.js"):
        scanned += 1
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for _quote, text in JS_STRING.findall(line):
                if text in EVENTS:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {text!r}")
    assert scanned, "no JavaScript found: the scan looks in the wrong place"
    assert not offenders, "routing keys written as strings:\n" + "\n".join(offenders)


def test_the_javascript_scan_finds_each_kind_of_string():
    line = """switch (t) { case "session.failed": x(); case 'model.trained': case `photos.processed`: }"""
    found = [text for _quote, text in JS_STRING.findall(line)]
    assert found == ["session.failed", "model.trained", "photos.processed"]
    assert JS_STRING.findall(r'f("a \" b", "session.completed")')[1][1] == "session.completed"


def _our_files(pattern: str) -> list[pathlib.Path]:
    skipped = {"vendor", "node_modules", ".venv"}
    return [
        path
        for folder in ("libs", "services", "tests", "bench")
        for path in (ROOT / folder).rglob(pattern)
        if not skipped & set(path.relative_to(ROOT).parts)
    ]
