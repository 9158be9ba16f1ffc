"""The waiting page names events only through the contracts: the server renders the contract's
names into ``data-events`` and waiting.js reads every event name from there (EVENT.<Name>), so a
renamed or removed event cannot leave the page silently waiting for a string that never comes."""

from __future__ import annotations

import html as html_lib
import json
import re
from pathlib import Path

from flask import Flask

from libs.contracts import GATEWAY_EVENTS, SessionState
from libs.db.demo import DemoData
from libs.settings import Settings
from tests.support.gateway import new_session
from tests.support.intake import sign_in

WAITING_JS = Path(__file__).resolve().parents[2] / "services/intake/static/waiting.js"


def test_the_waiting_page_gets_the_event_names_from_the_contracts(
    app: Flask, intake_settings: Settings, demo: DemoData, db
) -> None:
    bea = sign_in(app, intake_settings, demo.employees[0])
    generating = new_session(db, demo.employees[0], SessionState.GENERATING)
    page = bea.client.get(f"/sessions/{generating}/waiting").get_data(as_text=True)
    (attribute,) = re.findall(r"data-events='([^']*)'", page)
    assert json.loads(html_lib.unescape(attribute)) == {e.name: e.routing_key for e in GATEWAY_EVENTS}


def test_every_event_the_script_handles_is_one_the_gateway_relays() -> None:
    script = WAITING_JS.read_text()
    used = set(re.findall(r"\bEVENT\.(\w+)", script))
    relayed = {e.name for e in GATEWAY_EVENTS}
    assert used, "waiting.js reads no event name from data-events"
    assert used <= relayed, f"waiting.js handles events the gateway never sends: {used - relayed}"
    # Each of the page's steps moves on one of these; progress within a step on the others.
    assert {"SessionCompleted", "SessionRejected", "SessionFailed", "HeadshotGenerated"} <= used
    assert 'JSON.parse(d.events || "{}")' in script
