"""What intake accepts and answers, as marshmallow schemas: the pages and the JSON API load the same ones.

The fixed choice lists (gender, eye colour, glasses) and the checks against an organization's
rules live in choices.py; these schemas read them from there. Rules that depend on the organization
and its package (allowed styles, how many, which formats, how many photos so far) are passed in as
:class:`~services.intake.choices.Rules`::

    rules = Rules(catalog, package, allowed=frozenset({"navy:suit", "office:shirt"}), photo_count=3)
    data = SubmissionSchema(rules=rules).load({
        "full_name": "Bea Employee", "gender": "female", "eye_color": "brown", "glasses": "no_glasses",
        "styles": ["navy:suit"], "format": "standard", "agree_terms": True, "best_photos": True,
    })

A failure raises ``marshmallow.ValidationError`` whose ``messages`` name each field, e.g.
``{"styles": ["Please choose at least one style."], "agree_terms": ["Please accept the terms."]}``.
Without ``rules`` a schema checks only the shape of the data (that is how the API document and the
API's request parsing use them).

The pages and the API load these schemas and build the commands of commands.py from what loads
(``SavePersonalInfo(session_id, **data)``); the domain never sees a request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask_smorest.fields import Upload
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    pre_load,
    validate,
    validates,
    validates_schema,
)

from services.intake.choices import (
    EYE_COLORS,
    GENDERS,
    GLASSES,
    NO_PHOTOS,
    Rules,
    format_errors,
    style_errors,
)

NAME_MAX = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# --- fields shared by the schemas ---------------------------------------------------------------------
def _name_field(*, required: bool) -> fields.String:
    return fields.String(
        required=required,
        allow_none=not required,
        validate=[
            validate.Length(min=1, max=NAME_MAX, error=f"Please keep your name under {NAME_MAX} characters."),
            validate.Regexp(r"^[^\x00-\x1f\x7f]*$", error="Please use only printable characters."),
        ],
        error_messages={"required": "Please enter your name.", "null": "Please enter your name."},
        metadata={"description": "The name to use for the headshots.", "example": "Bea Employee"},
    )


def _choice_field(choices: Mapping[str, str], *, what: str, required: bool, example: str) -> fields.String:
    return fields.String(
        required=required,
        allow_none=not required,
        validate=validate.OneOf(list(choices), error=f"Please choose {what} from the list."),
        error_messages={"required": f"Please choose {what}.", "null": f"Please choose {what}."},
        metadata={"description": f"One of: {', '.join(choices)}.", "example": example},
    )


def _styles_field(*, required: bool) -> fields.List:
    return fields.List(
        fields.String(validate=validate.Length(max=130)),
        required=required,
        error_messages={"required": "Please choose at least one style."},
        metadata={
            "description": "Chosen styles, as 'backdrop:clothing' ids (the package's pre-selected "
            "styles are added automatically and must not be listed).",
            "example": ["navy:suit", "office:shirt"],
        },
    )


def _format_field(*, required: bool) -> fields.String:
    return fields.String(
        required=required,
        allow_none=not required,
        validate=validate.Length(min=1, max=64),
        error_messages={"required": "Please choose a format.", "null": "Please choose a format."},
        metadata={
            "description": "'standard' (3:2) or, on the Executive package, 'portrait' (4:5).",
            "example": "standard",
        },
    )


def _confirm_field(message: str, description: str) -> fields.Boolean:
    return fields.Boolean(
        required=True,
        validate=validate.Equal(True, error=message),
        error_messages={"required": message, "null": message},
        metadata={"description": description, "example": True},
    )


class _Input(Schema):
    """Base of the request schemas: unknown fields are errors, blanks count as missing."""

    class Meta:
        unknown = RAISE

    def __init__(self, *, rules: Rules | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rules = rules

    @pre_load
    def _clean(self, data: Any, **_kwargs: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        cleaned: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, str):
                value = _CONTROL.sub("", value).strip() if key != "full_name" else value.strip()
                value = value or None
            if key == "styles" and isinstance(value, list) and all(isinstance(v, str) for v in value):
                # Keep the person's order, drop repeats (a double tap on a chip is not an error).
                # A list with anything but text in it is left for the field to refuse, item by item.
                value = list(dict.fromkeys(v.strip() for v in value))
            cleaned[key] = value
        return cleaned


class _StyleRules:
    """Field validators shared by the schemas that carry ``styles`` and ``format``."""

    rules: Rules | None
    _styles_required = False

    @validates("styles")
    def _check_styles(self, value: list[str], **_kwargs: Any) -> None:
        if self.rules is not None:
            errors = style_errors(value, self.rules, at_least_one=self._styles_required)
        else:
            errors = ["Please choose at least one style."] if self._styles_required and not value else []
        if errors:
            raise ValidationError(errors)

    @validates("format")
    def _check_format(self, value: str | None, **_kwargs: Any) -> None:
        if value is not None and self.rules is not None and (errors := format_errors(value, self.rules)):
            raise ValidationError(errors)


# --- request schemas ----------------------------------------------------------------------------------
class PersonalInfoSchema(_Input):
    """Personal info, saved as the person goes: every field optional, null (or "") clears it.

    Example: ``{"full_name": "Bea Employee", "gender": "female", "eye_color": "brown",
    "glasses": "no_glasses"}``
    """

    full_name = _name_field(required=False)
    gender = _choice_field(GENDERS, what="a gender", required=False, example="female")
    eye_color = _choice_field(EYE_COLORS, what="an eye colour", required=False, example="brown")
    glasses = _choice_field(GLASSES, what="whether to show glasses", required=False, example="no_glasses")


class StylesSchema(_StyleRules, _Input):
    """Chosen styles and format, saved as the person goes (an empty list is fine until submit).

    Example: ``{"styles": ["navy:suit", "office:shirt"], "format": "portrait"}``
    """

    styles = _styles_field(required=False)
    format = _format_field(required=False)


class SubmissionSchema(_StyleRules, _Input):
    """Everything a submission needs; with ``rules`` it also checks photos, styles and format.

    The pages post it as a form; the API takes the same fields as JSON, where any field left out
    is taken from what the session already saved (usually only the two confirmations are sent).
    """

    _styles_required = True

    full_name = _name_field(required=True)
    gender = _choice_field(GENDERS, what="a gender", required=True, example="female")
    eye_color = _choice_field(EYE_COLORS, what="an eye colour", required=True, example="brown")
    glasses = _choice_field(GLASSES, what="whether to show glasses", required=True, example="no_glasses")
    styles = _styles_field(required=True)
    format = _format_field(required=True)
    agree_terms = _confirm_field("Please accept the terms to continue.", "I agree to the terms.")
    best_photos = _confirm_field("Please confirm these are your best photos.", "These are my best photos.")

    @validates_schema(skip_on_field_errors=False)
    def _check_photos(self, _data: dict[str, Any], **_kwargs: Any) -> None:
        if self.rules is not None and self.rules.photo_count < 1:
            raise ValidationError(NO_PHOTOS, field_name="photos")


class UploadSchema(Schema):
    """One photo per request, as multipart/form-data in the field ``photo``."""

    photo = Upload(
        required=True,
        error_messages={"required": "Please attach a photo in the form field 'photo'."},
        metadata={"description": "A JPEG, PNG or HEIC photo of the person, one face, well lit."},
    )


# --- response schemas (the API document; the views dump plain dicts through them) ---------------------
class FaceBoxSchema(Schema):
    x = fields.Integer()
    y = fields.Integer()
    w = fields.Integer()
    h = fields.Integer()


class PhotoSchema(Schema):
    id = fields.String(metadata={"example": "5b0f3c1e-8d6a-4a43-9d0e-2f4d7f7f6c11"})
    width = fields.Integer(metadata={"example": 512})
    height = fields.Integer(metadata={"example": 512})
    face = fields.Nested(FaceBoxSchema, allow_none=True)
    thumbnail_url = fields.String(metadata={"description": "A small JPEG of the clean photo (owner only)."})
    uploaded_at = fields.DateTime()


class ProgressSchema(Schema):
    done = fields.Integer(metadata={"example": 3})
    total = fields.Integer(metadata={"example": 12})


class HeadshotRefSchema(Schema):
    id = fields.String()
    style = fields.String(metadata={"example": "navy:suit"})


class StatusSchema(Schema):
    session_id = fields.String()
    state = fields.String(metadata={"example": "generating"})
    stage = fields.String(
        metadata={"description": "The state in words.", "example": "Creating your headshots"}
    )
    progress = fields.Nested(ProgressSchema)
    submitted_at = fields.DateTime(allow_none=True)
    completed_at = fields.DateTime(allow_none=True)
    headshots = fields.List(
        fields.Nested(HeadshotRefSchema), metadata={"description": "The headshots finished so far."}
    )


class PersonalInfoOutSchema(Schema):
    full_name = fields.String(allow_none=True)
    gender = fields.String(allow_none=True)
    eye_color = fields.String(allow_none=True)
    glasses = fields.String(allow_none=True)


class StylesOutSchema(Schema):
    styles = fields.List(fields.String(), metadata={"example": ["navy:suit", "office:shirt"]})
    format = fields.String(allow_none=True, metadata={"example": "portrait"})
    preselected = fields.List(
        fields.String(),
        metadata={"description": "Added by the package.", "example": ["studio-grey:suit", "office:blazer"]},
    )


class StyleOptionSchema(Schema):
    id = fields.String(metadata={"example": "navy:suit"})
    label = fields.String(metadata={"example": "Deep navy · Dark suit"})
    backdrop = fields.String()
    clothing = fields.String()
    colors = fields.List(fields.String(), metadata={"example": ["#2a3b5c", "#16223a"]})


class FormatOptionSchema(Schema):
    id = fields.String(metadata={"example": "standard"})
    label = fields.String(metadata={"example": "Standard 3:2"})
    width = fields.Integer()
    height = fields.Integer()


class PackageSchema(Schema):
    id = fields.String(metadata={"example": "executive"})
    label = fields.String()
    max_styles = fields.Integer()
    headshots_per_style = fields.Integer()
    preselected = fields.List(fields.Nested(StyleOptionSchema))


class OptionsSchema(Schema):
    styles = fields.List(fields.Nested(StyleOptionSchema), metadata={"description": "Styles one may choose."})
    formats = fields.List(fields.Nested(FormatOptionSchema))
    genders = fields.Dict(keys=fields.String(), values=fields.String())
    eye_colors = fields.Dict(keys=fields.String(), values=fields.String())
    glasses = fields.Dict(keys=fields.String(), values=fields.String())
    max_photos = fields.Integer()


class SessionSchema(Schema):
    id = fields.String()
    state = fields.String(metadata={"example": "onboarding"})
    stage = fields.String()
    package = fields.Nested(PackageSchema)
    personal_info = fields.Nested(PersonalInfoOutSchema)
    styles = fields.List(fields.String(), metadata={"description": "Chosen styles (pre-selected excluded)."})
    format = fields.String(allow_none=True)
    photos = fields.List(fields.Nested(PhotoSchema))
    options = fields.Nested(OptionsSchema)
    rejection_reason = fields.String(
        allow_none=True, metadata={"description": "Why the org admin sent the session back, if they did."}
    )
    csrf_token = fields.String(
        metadata={"description": "Send it back as the X-CSRF-Token header on every write."}
    )


class DeleteRequestSchema(_Input):
    confirm = fields.Boolean(required=True, metadata={"description": "Must be true: deletion is for good."})


class ReceiptSchema(Schema):
    id = fields.Integer()
    session_id = fields.String(allow_none=True)
    reason = fields.String(metadata={"description": "completion, retention or request"})
    by = fields.String(metadata={"description": "you, admin or system"})
    kinds = fields.Dict(
        keys=fields.String(), values=fields.Integer(), metadata={"description": "kind: objects"}
    )
    created_at = fields.DateTime()
