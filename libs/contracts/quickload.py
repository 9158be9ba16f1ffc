"""``schema.load`` without marshmallow's general machinery, for input that is plainly valid.

    loader = Loader(SessionSubmittedData())
    loader.load({"package": "executive", ...})   # == the schema's own load, several times quicker

marshmallow is the contract: events.py declares every envelope and body with it, and its error
messages are the reasons a malformed message is dead-lettered with. But its general machinery (error
stores, getters, validator chains built per value) costs ~100 µs per message, on the path of every
message produced and consumed. So each schema is read once, when its loader is built, into a plain
Python check of its fields: the common kinds (String, UUID, Integer, Float, Boolean, List, Dict)
checked inline, dates through the field's own ``deserialize``, and each field's own validators. That check only ever returns what ``schema.load`` returns; whenever it is not sure (an
invalid value, or a valid one of an unusual type such as ``"5"`` for an Integer), it gives up and
the schema itself loads the input, for its result or its ``ValidationError``. What is refused, and
the reason given, therefore stay marshmallow's. A schema with hooks, or options the check does not
know (``INCLUDE``, dotted attributes, field processors, Nested and other field kinds) is always
loaded by marshmallow.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, fields
from marshmallow.utils import missing

# Field kinds whose ``deserialize`` reads nothing but the value (the schema passes the whole input
# too): checked by that call. Any other kind the quick check does not know leaves its schema to
# marshmallow.
_SELF_CONTAINED = (fields.AwareDateTime, fields.NaiveDateTime, fields.DateTime, fields.Date)

# A field's check: the loaded value, or any exception when not sure.
_Check = Callable[[Any], Any]
# A schema's check: the loaded dict, or None when not sure.
QuickLoad = Callable[[Any], dict[str, Any] | None]


class _NotSure(Exception):
    pass


class Loader:
    """One schema's ``load``: the quick check first, the schema itself when that is not sure."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.quick = quick_load(schema)

    def load(self, data: Any) -> dict[str, Any]:
        if self.quick is not None:
            loaded = self.quick(data)
            if loaded is not None:
                return loaded
        result: dict[str, Any] = self.schema.load(data)
        return result


def quick_load(schema: Schema) -> QuickLoad | None:
    """The quick check of ``schema`` (see the module's docstring), or None if it has none."""
    if schema.many or schema.partial or schema.unknown not in (RAISE, EXCLUDE) or any(schema._hooks.values()):
        return None
    checks: list[tuple[str, str, bool, _Check]] = []  # input key, output key, required, check
    for name, field in schema.load_fields.items():
        key = field.data_key if field.data_key is not None else name
        out = field.attribute or name
        if "." in out or field.pre_load or field.post_load:
            return None
        if not field.required and field.load_default is not missing:
            return None
        check = _field_check(name, field)
        if check is None:
            return None
        checks.append((key, out, field.required, check))
    known = {key for key, _out, _required, _check in checks}
    strict = schema.unknown == RAISE

    def load(data: Any) -> dict[str, Any] | None:
        if type(data) is not dict or (strict and not known.issuperset(data)):
            return None
        loaded: dict[str, Any] = {}
        try:
            for key, out, required, check in checks:
                if key in data:
                    loaded[out] = check(data[key])
                elif required:
                    return None
        except Exception:  # not sure: the schema decides
            return None
        return loaded

    return load


def _field_check(name: str | None, field: fields.Field) -> _Check | None:
    """None: a field kind the quick check does not know."""
    inline = _inline_check(field)
    if inline is None and type(field) not in _SELF_CONTAINED:
        return None
    validators = list(field.validators)
    allow_none = field.allow_none

    def check(value: Any) -> Any:
        if value is None:
            if allow_none:
                return None  # marshmallow skips the validators of a null it allows
            raise _NotSure
        if inline is None:  # the field's own conversion and validators
            return field.deserialize(value, name)
        loaded = inline(value)
        for validator in validators:
            if validator(loaded) is False:  # marshmallow treats a plain False as a failure too
                raise _NotSure
        return loaded

    return check


def _inline_check(field: fields.Field) -> _Check | None:
    """The field kind's own conversion, for values of the type JSON gives it; None: not one of
    these kinds. Exact types only: a subclass (Email is a String) adds checks of its own."""
    kind = type(field)
    if kind is fields.String:
        return _exactly(str)
    if kind is fields.UUID:
        return lambda value: uuid.UUID(value) if type(value) is str else _not_sure()
    if kind is fields.Integer:
        return _exactly(int)  # not bool: marshmallow refuses True/False as numbers
    if kind is fields.Float:
        allow_nan = field.allow_nan  # type: ignore[attr-defined]

        def to_float(value: Any) -> float:
            if type(value) is not float and type(value) is not int:
                raise _NotSure
            number = float(value)
            if not allow_nan and not math.isfinite(number):
                raise _NotSure
            return number

        return to_float
    if kind is fields.Boolean:
        truthy, falsy = field.truthy, field.falsy  # type: ignore[attr-defined]

        def to_bool(value: Any) -> bool:
            if type(value) is not bool:
                raise _NotSure
            if not truthy:
                return value
            if value in truthy:
                return True
            if value in falsy:
                return False
            raise _NotSure

        return to_bool
    if kind is fields.List:
        inner = _field_check(None, field.inner)  # type: ignore[attr-defined]
        if inner is None:
            return None
        return lambda value: [inner(v) for v in value] if type(value) is list else _not_sure()
    if kind is fields.Dict and field.key_field is None and field.value_field is None:  # type: ignore[attr-defined]
        return lambda value: dict(value) if type(value) is dict else _not_sure()
    return None


def _exactly(kind: type) -> _Check:
    def check(value: Any) -> Any:
        if type(value) is not kind:
            raise _NotSure
        return value

    return check


def _not_sure() -> Any:
    raise _NotSure
