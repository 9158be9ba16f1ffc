"""The published OpenAPI document describes what the intake API answers: every answer the intake
tests see is checked against it (tests/support/openapi.py, openapi-core), nested field errors
included, and bodies the document calls required are required."""

from __future__ import annotations

import json

import pytest
from flask import Flask

from libs.db.demo import DemoData
from tests.support.intake import (
    sign_in,
)
from tests.support.openapi import DocumentedApi, OpenApiMismatch


def test_a_list_items_errors_are_nested_and_documented(app: Flask, intake_settings, demo: DemoData):
    bea = sign_in(app, intake_settings, demo.employees[0])
    checked = DocumentedApi.of(app).checked
    response = bea.client.put(bea.api("/styles"), json={"styles": ["x" * 131]}, headers=bea.headers)
    assert response.status_code == 422
    assert response.json["error"]["fields"] == {"styles": {"0": ["Longer than maximum length 130."]}}
    assert DocumentedApi.of(app).checked == checked + 1  # this very answer was checked


@pytest.mark.parametrize("path", ["/info", "/styles"])
def test_a_put_without_a_body_is_refused(app: Flask, intake_settings, demo: DemoData, path):
    bea = sign_in(app, intake_settings, demo.employees[0])
    empty = bea.client.put(bea.api(path), headers=bea.headers)
    assert empty.status_code == 400
    assert empty.json["error"]["code"] == "body_required"
    form = bea.client.put(bea.api(path), data={"full_name": "Bea"}, headers=bea.headers)
    assert form.status_code == 415
    assert bea.client.put(bea.api(path), json={}, headers=bea.headers).status_code == 200


def test_the_document_says_those_bodies_are_required(app: Flask):
    document = DocumentedApi.of(app).document
    for path in ("info", "styles"):
        assert document["paths"][f"/api/v1/sessions/{{session_id}}/{path}"]["put"]["requestBody"]["required"]


def test_an_answer_the_document_does_not_describe_fails_the_check(app: Flask, intake_settings, demo):
    bea = sign_in(app, intake_settings, demo.employees[0])
    response = bea.client.put(bea.api("/info"), json={"gender": "robot"}, headers=bea.headers)
    assert response.status_code == 422  # documented, so it passed the check
    wrong = {"error": {"status": 422, "code": "validation_failed", "message": "m", "fields": {"gender": 5}}}
    response.set_data(json.dumps(wrong))
    with pytest.raises(OpenApiMismatch):
        DocumentedApi.of(app).check(response)
    response.set_data(json.dumps({"full_name": 7}))
    response.status_code = 200
    with pytest.raises(OpenApiMismatch):
        DocumentedApi.of(app).check(response)
