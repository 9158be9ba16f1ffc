"""Intake's refusals: raised by the domain without a word of HTTP, answered at the web edge from
one table, the same way for the pages and the JSON API."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from flask import Flask

from libs.db.demo import DemoData
from libs.imaging.errors import REASONS
from services.intake import errors
from services.intake.app import ERRORS, to_api_error
from tests.support.intake import add_photo, error_of, sign_in

INTAKE = Path(__file__).resolve().parents[2] / "services" / "intake"
# The domain: what intake is about. The edge (app, views, api, schemas, forms, context) may import
# anything; these may not import the web frameworks or the edge.
DOMAIN = [
    "sessions",
    "photos",
    "submission",
    "results",
    "deletion",
    "commands",
    "errors",
    "choices",
    "handlers",
]
EDGE = {"flask", "flask_smorest", "werkzeug", "webargs", "marshmallow", "libs.web"} | {
    f"services.intake.{m}" for m in ("app", "views", "views_privacy", "api", "schemas", "forms", "context")
}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("module", DOMAIN)
def test_the_domain_imports_no_web_framework_and_no_edge_module(module: str):
    found = imported(INTAKE / f"{module}.py")
    wrong = {name for name in found for edge in EDGE if name == edge or name.startswith(edge + ".")}
    assert not wrong, f"{module}.py imports {sorted(wrong)}"


def test_no_domain_module_names_a_status_code():
    status = re.compile(r"\b(40[0-9]|41[0-9]|42[0-9]|5[0-9][0-9])\b")
    for module in DOMAIN:
        found = status.findall((INTAKE / f"{module}.py").read_text())
        assert not found, f"{module}.py mentions {found}"


def test_every_refusal_has_a_status_in_the_one_table():
    refusals = [
        kind
        for kind in vars(errors).values()
        if isinstance(kind, type)
        and issubclass(kind, errors.IntakeRefused)
        and kind is not errors.IntakeRefused
    ]
    assert len(refusals) == 8
    for kind in refusals:
        assert any(issubclass(kind, mapped) for mapped in ERRORS), kind


@pytest.mark.parametrize(
    ("refusal", "status", "code"),
    [
        (errors.NotFound("photo"), 404, "not_found"),
        (errors.NotEditable(), 409, "not_editable"),
        (errors.RenewalOff(), 403, "renewal_off"),
        (errors.SessionInProgress(), 409, "session_in_progress"),
        (errors.Invalid(fields={"gender": ["Please choose a gender."]}), 422, "validation_failed"),
        (
            errors.ConfirmationNeeded(fields={"confirm": ["Please confirm the deletion."]}),
            422,
            "confirmation_needed",
        ),
        (errors.PhotoRefused("too_many_photos", "At most 20."), 422, "too_many_photos"),
        (
            errors.PhotoRefused("unsupported_format", REASONS["unsupported_format"][1]),
            415,
            "unsupported_format",
        ),
        (errors.PhotoRefused("file_too_large", REASONS["file_too_large"][1]), 413, "file_too_large"),
        (errors.PhotoRefused("no_face", REASONS["no_face"][1]), 422, "no_face"),
        (errors.RateLimited(retry_after=12), 429, "too_many_uploads"),
    ],
)
def test_each_refusal_is_answered_with_its_status_code_and_words(refusal, status: int, code: str):
    answer = to_api_error(refusal)
    assert (answer.status, answer.code, answer.message) == (status, code, refusal.message)
    assert answer.fields == refusal.fields
    assert answer.headers == ({"Retry-After": "12"} if status == 429 else {})


def test_pages_and_api_answer_a_refusal_from_the_same_table(app: Flask, intake_settings, demo: DemoData, db):
    bea = sign_in(app, intake_settings, demo.employees[0])
    photo_id = add_photo(db, demo.org_id, bea.session_id)
    other = sign_in(app, intake_settings, demo.employees[1])
    # Another person's photo: not found, on the page and in the API.
    page = other.client.post(
        f"/sessions/{bea.session_id}/photos/{photo_id}/delete", data={"csrf_token": other.csrf}
    )
    api = other.client.delete(f"/api/v1/sessions/{bea.session_id}/photos/{photo_id}", headers=other.headers)
    assert page.status_code == api.status_code == 404
    assert page.mimetype == "text/html" and "No such session." in page.get_data(as_text=True)
    assert error_of(api) == {"status": 404, "code": "not_found", "message": "No such session."}
