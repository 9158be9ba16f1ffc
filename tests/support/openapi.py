"""Check every API answer a test sees against the OpenAPI document the app publishes (openapi-core).

    app.test_client_class = OpenApiCheckedClient      # in the app fixture: every client checks
    client = app.test_client()
    client.put("/api/v1/sessions/…/info", json={...}) # raises OpenApiMismatch if the answer's status,
                                                      # content type or body is not what the document says

Only answers under the document's paths are checked (pages, static files and the document itself
are not API answers). A 404 or 405 for a path or method the document does not list is the honest
answer to a request outside the API, so it is let through; anything else undocumented fails.
The document is read once per app from its published URL (``OPENAPI_URL_PREFIX`` +
``OPENAPI_JSON_PATH``), exactly as a client of the API would read it (signed in, with
``DocumentedApi.read_as(app, client)``, where only the API's users may read it: the ops API).
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIResponse
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.testing import MockRequest

_CACHE = "tests.openapi"


class OpenApiMismatch(AssertionError):
    """An answer the published document does not describe."""


class DocumentedApi:
    def __init__(self, app: Flask, reader: FlaskClient | None = None) -> None:
        prefix = "/" + app.config["OPENAPI_URL_PREFIX"].strip("/")
        self.document_url = f"{prefix}/{app.config['OPENAPI_JSON_PATH']}"
        raw = (reader or FlaskClient(app, app.response_class)).get(self.document_url)
        assert raw.status_code == 200, f"{self.document_url} answered {raw.status_code}"
        self.document: dict[str, Any] = raw.get_json()
        self.openapi = OpenAPI.from_dict(self.document)  # also validates the document itself
        self.checked = 0

    @classmethod
    def read_as(cls, app: Flask, reader: FlaskClient) -> DocumentedApi:
        """Read the document with ``reader`` (signed in), for an API that shows it only to its users."""
        app.extensions[_CACHE] = cls(app, reader)
        return cls.of(app)

    @classmethod
    def of(cls, app: Flask) -> DocumentedApi:
        if _CACHE not in app.extensions:
            app.extensions[_CACHE] = cls(app)
        documented: DocumentedApi = app.extensions[_CACHE]
        return documented

    def check(self, response: Any) -> None:
        """Raise OpenApiMismatch unless the document describes ``response`` (a werkzeug TestResponse)."""
        request = response.request
        if request.path == self.document_url or not request.path.startswith("/api/"):
            return
        try:
            # Only the operation is needed to check an answer (the request body was read by the app).
            operation = MockRequest(request.host_url, request.method.lower(), request.path)
            self.openapi.validate_response(operation, WerkzeugOpenAPIResponse(response))
        except (PathNotFound, OperationNotFound):
            if response.status_code in (404, 405):
                return
            raise OpenApiMismatch(
                f"{request.method} {request.path} answered {response.status_code}, "
                "but the document has no such operation"
            ) from None
        except Exception as exc:
            raise OpenApiMismatch(
                f"{request.method} {request.path} answered {response.status_code} "
                f"{response.get_data(as_text=True)[:500]!r}, which the document does not describe: "
                f"{exc!r} {getattr(exc, '__cause__', None)!r}"
            ) from exc
        self.checked += 1


class OpenApiCheckedClient(FlaskClient):
    """Flask's test client, checking each API answer against the app's published document."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        response = super().open(*args, **kwargs)
        DocumentedApi.of(self.application).check(response)
        return response
