"""What every JSON API of the product shares (flask-smorest): the error shape as it is documented,
and request bodies that are really required when the document says so.

    from libs.web.api import ErrorSchema, ServiceApi, ServiceBlueprint

    blp = ServiceBlueprint("sessions", __name__, url_prefix="/api/v1/sessions")
    ...
    ServiceApi(app).register_blueprint(blp)

- :class:`ServiceApi` keeps libs/web's error handlers (``{"error": {"status", "code", "message",
  "fields"}}`` for pages and API alike) instead of flask-smorest's, and documents that shape as the
  default response of every operation. ``fields`` maps a field to its messages, or, for a list or a
  nested object, to the same kind of map one level down::

      {"fields": {"full_name": ["Please enter your name."], "styles": {"0": ["Longer than maximum length 130."]}}}

- :class:`ServiceBlueprint` refuses a request without a body where ``@blp.arguments(...)`` takes a
  JSON body (``required=True``, the default): webargs would otherwise load an empty body as ``{}``
  and the call would succeed, unlike what the document says. No body answers 400 ``body_required``;
  a body that is not JSON answers 415.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flask_smorest
from flask import request
from marshmallow import Schema, fields

from libs.web.errors import ApiError
from libs.web.text import FORM_TYPES

FIELD_ERRORS = "FieldErrors"

# A field's messages, or (for a list's items or a nested object's fields) the same map one level down.
FIELD_ERRORS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Per-field messages (validation errors only): a list of messages for a field, or, "
    'for the items of a list or the fields of an object, the same kind of map, e.g. {"styles": {"0": '
    '["Longer than maximum length 130."]}}.',
    "additionalProperties": {
        "oneOf": [
            {"type": "array", "items": {"type": "string"}},
            {"$ref": f"#/components/schemas/{FIELD_ERRORS}"},
        ]
    },
    "example": {
        "full_name": ["Please enter your name."],
        "styles": {"0": ["Longer than maximum length 130."]},
    },
}


class FieldErrorsField(fields.Raw):
    """The ``fields`` member of an error, documented as the recursive ``FieldErrors`` schema."""


def _field_errors_property(_converter: Any, field: fields.Field, **_kwargs: Any) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{FIELD_ERRORS}"} if isinstance(field, FieldErrorsField) else {}


class ErrorBodySchema(Schema):
    status = fields.Integer(required=True, metadata={"example": 422})
    code = fields.String(required=True, metadata={"example": "no_face"})
    message = fields.String(required=True, metadata={"example": "We couldn't find a face in this photo."})
    fields_ = FieldErrorsField(data_key="fields")


class ErrorSchema(Schema):
    """Every error an API answers: ``{"error": {"status", "code", "message", "fields"?}}``."""

    error = fields.Nested(ErrorBodySchema, required=True)


class ServiceApi(flask_smorest.Api):
    """flask-smorest's Api with libs/web's error shape, documented exactly."""

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        pass  # libs/web's handlers (create_base_app) answer every error, API or page

    def _register_responses(self) -> None:
        # Called while the spec is built, before the error schema is first converted.
        self.spec.components.schema(FIELD_ERRORS, component=FIELD_ERRORS_SCHEMA)
        self.ma_plugin.converter.add_attribute_function(_field_errors_property)
        super()._register_responses()


class ServiceBlueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint whose required JSON bodies are required."""

    def arguments(self, schema: Any, *, location: str = "json", required: bool = True, **kwargs: Any) -> Any:
        decorator = super().arguments(schema, location=location, required=required, **kwargs)
        if location != "json" or not required:
            return decorator

        def with_body(func: Callable[..., Any]) -> Callable[..., Any]:
            parsed = decorator(func)

            @functools.wraps(parsed)
            def checked(*args: Any, **kw: Any) -> Any:
                require_json_body()
                return parsed(*args, **kw)

            return checked

        return with_body


def require_json_body() -> None:
    # A form is a body, just not JSON (and the NUL check may have read it already: its data is gone).
    if request.mimetype not in FORM_TYPES and not request.get_data(cache=True):
        raise ApiError(400, "body_required", "This request needs a JSON body (an empty object {} is one).")
    if not request.is_json:
        raise ApiError(
            415, "unsupported_media_type", "Send the body as JSON (Content-Type: application/json)."
        )
