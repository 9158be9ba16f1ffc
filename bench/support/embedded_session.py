"""A default-package session in the embedded mode, from submit to completed, and its time per stage.

The embedded mode as ``python -m services`` runs it (every service in this process, the memory://
broker, a SQLite file, the studio engine), started in a temporary folder. The demo organization is
put on the catalog's default package; an employee signs in with her invite link and, through the
intake API as the browser does, uploads a portrait, fills in her details, picks as many styles as
the package allows and submits. The clock runs from the submit request until the status API says
``completed``. Two sessions by two employees, one after the other: the first pays what a fresh
process loads on first use (face models, the engine), the second is the steady state.

Per stage, from the outbox timeline (when each event was written):
review (submitted → approved), preprocessing (→ photos.processed), training (→ model.trained),
generating (→ session.completed), and the rest (approval to pick-up, completion to the status
API saying so) as the difference to the total.

Run by ``python bench/generation.py`` (its part 5).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select

from libs.catalog import default_catalog
from libs.contracts import (
    HEADSHOT_GENERATED,
    MODEL_TRAINED,
    PHOTOS_PROCESSED,
    SESSION_APPROVED,
    SESSION_COMPLETED,
    SESSION_SUBMITTED,
)
from libs.db import Organization, OutboxMessage, User
from libs.db.demo import seed_demo
from libs.settings import Settings
from libs.web import invite_url
from services import launcher
from tests.support.intake import astronaut_png

STYLES = ("navy:suit", "white:shirt", "outdoor:knit", "warm-beige:blazer")
STAGES = (
    ("review", SESSION_SUBMITTED, SESSION_APPROVED),
    ("preprocessing", SESSION_APPROVED, PHOTOS_PROCESSED),
    ("training", PHOTOS_PROCESSED, MODEL_TRAINED),
    ("generating", MODEL_TRAINED, SESSION_COMPLETED),
)


def bench_embedded_session(work: Path, timeout: float = 300) -> dict[str, Any]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per status poll
    settings = Settings(VAR_DIR=str(work / "var"), PORT=0, SECRET_KEY="bench-embedded", ENGINE="studio")
    running = launcher.start(settings)
    try:
        settings = running.platform.settings  # the bound port is known now
        db = running.platform.db
        demo = seed_demo(db)
        package = default_catalog().default_package()
        with db.uow(all_orgs=True) as uow:
            org = uow.session.get(Organization, demo.org_id)
            assert org is not None
            org.package_id = package.id
            uow.commit()
        styles = list(STYLES[: package.max_styles])
        runs = [_one_session(settings, db, user, styles, timeout) for user in demo.employees[:2]]
    finally:
        running.shutdown()
    return {"package": package.id, "chosen_styles": len(styles), "first": runs[0], "second": runs[1]}


def _one_session(
    settings: Settings, db: Any, user: User, styles: list[str], timeout: float
) -> dict[str, Any]:
    http = requests.Session()
    http.get(invite_url(settings, user), timeout=30).raise_for_status()
    base = settings.public_url

    def call(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        answer = http.request(method, f"{base}{path}", timeout=60, **kwargs)
        assert answer.status_code in (200, 201), f"{method} {path}: {answer.status_code} {answer.text[:300]}"
        return answer.json() if answer.content else {}

    current = call("GET", "/api/v1/sessions/current")
    headers = {"X-CSRF-Token": current["csrf_token"]}
    api = f"/api/v1/sessions/{current['id']}"
    call("POST", f"{api}/photos", files={"photo": ("me.png", astronaut_png())}, headers=headers)
    info = {"full_name": "Bench Person", "gender": "female", "eye_color": "brown", "glasses": "no_glasses"}
    call("PUT", f"{api}/info", json=info, headers=headers)
    call("PUT", f"{api}/styles", json={"styles": styles, "format": "standard"}, headers=headers)
    start = time.perf_counter()
    call("POST", f"{api}/submit", json={"agree_terms": True, "best_photos": True}, headers=headers)
    deadline = start + timeout
    while (state := call("GET", f"{api}/status")["state"]) != "completed":
        assert state != "failed" and time.perf_counter() < deadline, f"session {current['id']} is {state}"
        time.sleep(0.05)
    total = time.perf_counter() - start
    with db.session(all_orgs=True) as s:
        rows = s.scalars(select(OutboxMessage).where(OutboxMessage.session_id == current["id"])).all()
        headshots = sum(1 for r in rows if r.routing_key == HEADSHOT_GENERATED.routing_key)
    first: dict[str, Any] = {}
    for row in sorted(rows, key=lambda r: r.id):
        first.setdefault(row.routing_key, row.created_at)
    stages = {
        name: round((first[end.routing_key] - first[begin.routing_key]).total_seconds(), 2)
        for name, begin, end in STAGES
    }
    return {"seconds": round(total, 2), "headshots": headshots, "stages": stages}


def describe(r: dict[str, Any]) -> str:
    lines = [
        f"embedded mode, submit to completed ({r['package']} package, {r['chosen_styles']} styles chosen)"
    ]
    for label in ("first", "second"):
        run = r[label]
        stages = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in run["stages"].items())
        lines.append(f"  {label} session: {run['seconds']:.1f}s for {run['headshots']} headshots ({stages})")
    return "\n".join(lines)
