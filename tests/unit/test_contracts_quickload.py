"""The quick check of envelopes and bodies: it accepts exactly what the marshmallow schemas accept,
with the same result, and a refused message gets the schemas' own reason (what the consumer
dead-letters it with)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from marshmallow import Schema, ValidationError, fields, post_load, validate

from bench.contracts import BODIES
from libs.contracts import EVENTS, SESSION_COMPLETED, ContractError, decode_message, new_message
from libs.contracts.events import _ENVELOPE
from libs.contracts.quickload import Loader, quick_load

ID = "6c1f0c52-3d0e-4a47-9d6e-2b1c1f0e9a11"
GONE = object()  # the key left out
# Values JSON can carry (NaN and Infinity too: Python's json reads them), of every kind a field
# could be given, valid or not for one field or another.
VALUES: list[Any] = [
    GONE,
    None,
    "",
    "x",
    "ab",
    "5",
    "true",
    "generating",
    "navy:suit",
    "x" * 3000,
    ID,
    ID.upper(),
    ID.replace("-", ""),
    "2026-11-24T03:00:00",
    "2026-11-24T03:00:00+00:00",
    "2026-11-24T05:00:00.123456+02:00",
    0,
    1,
    -1,
    16,
    2**70,
    10**400,
    1.0,
    12.5,
    -0.5,
    float("nan"),
    float("inf"),
    True,
    False,
    [],
    ["x"],
    ["navy:suit", "grey:blazer"],
    [ID, 3],
    [None],
    {},
    {"a": 1},
]


def schemas_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Loader, "load", lambda self, data: self.schema.load(data))


def outcome(body: dict[str, Any]) -> tuple[str, str]:
    """What decoding gives, in a form that tells 1, 1.0 and True apart."""
    try:
        message = decode_message(json.dumps(body).encode())
    except ContractError as exc:
        return "refused", str(exc)
    return "decoded", repr((message.to_dict(), type(message.data), message.event))


def variants() -> list[dict[str, Any]]:
    """Every event's typical envelope with each envelope field, then each body field, replaced by
    each of VALUES or left out; and with a field too many."""
    bodies = []
    for event, data in BODIES.items():
        session_id = ID if event.needs_session else None
        good = new_message(event, org_id=ID, session_id=session_id, **data).to_dict()
        bodies += [good, {**good, "extra": 1}, {**good, "data": {**good["data"], "full_name": "Ada"}}]
        for key in good:
            bodies += [_with(good, key, value) for value in VALUES]
        for key in data:
            bodies += [{**good, "data": _with(good["data"], key, value)} for value in VALUES]
    return bodies


def _with(mapping: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    changed = dict(mapping)
    if value is GONE:
        del changed[key]
    else:
        changed[key] = value
    return changed


def test_every_variant_is_decoded_or_refused_as_the_schemas_alone_do(monkeypatch: pytest.MonkeyPatch) -> None:
    bodies = variants()
    quick = [outcome(body) for body in bodies]
    schemas_only(monkeypatch)
    reference = [outcome(body) for body in bodies]
    mismatches = [(body, q, r) for body, q, r in zip(bodies, quick, reference, strict=True) if q != r]
    assert not mismatches, f"{len(mismatches)} differ, e.g. {mismatches[:3]}"
    decoded = sum(1 for kind, _ in reference if kind == "decoded")
    assert 0 < decoded < len(bodies) / 2  # both sides of the contract were exercised


def test_the_typical_messages_take_the_quick_path() -> None:
    assert _ENVELOPE.quick is not None
    for event, data in BODIES.items():
        assert event.loader.quick is not None, event
        assert event.loader.quick(data) == event.loader.schema.load(data)
        envelope = new_message(event, org_id=ID, session_id=ID, **data).to_dict()
        assert _ENVELOPE.quick(envelope) == _ENVELOPE.schema.load(envelope)
    assert set(BODIES) == set(EVENTS.values())


def test_a_message_id_is_normalised_as_the_schema_does() -> None:
    envelope = new_message(SESSION_COMPLETED, org_id=ID, session_id=ID, headshot_count=1).to_dict()
    upper = decode_message({**envelope, "message_id": ID.upper()})
    assert upper.message_id == ID == str(uuid.UUID(ID.upper()))


class _Hooked(Schema):
    name = fields.String(required=True)

    @post_load
    def shout(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        return {"name": data["name"].upper()}


class _Nested(Schema):
    inner = fields.Nested(_Hooked, required=True)


class _Plain(Schema):
    name = fields.String(required=True, validate=validate.Length(max=3))
    note = fields.String(load_default="none")


def test_schemas_it_cannot_vouch_for_are_left_to_marshmallow() -> None:
    assert quick_load(_Hooked()) is None  # hooks
    assert quick_load(_Nested()) is None  # a field kind it does not know
    assert quick_load(_Plain()) is None  # a default to fill in
    loader = Loader(_Hooked())
    assert loader.load({"name": "ada"}) == {"name": "ADA"}
    with pytest.raises(ValidationError, match="Unknown field"):
        loader.load({"name": "ada", "x": 1})
