"""Every validation rule of a submission, on the schema alone (no database)."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from libs.catalog import default_catalog
from services.intake.choices import EYE_COLORS, GENDERS, GLASSES, Rules
from services.intake.schemas import PersonalInfoSchema, StylesSchema, SubmissionSchema

CATALOG = default_catalog()
EXECUTIVE = CATALOG.package("executive")
STARTER = CATALOG.package("starter")


def rules(package=EXECUTIVE, allowed=None, photo_count=3) -> Rules:
    everything = {s.id for s in CATALOG.all_styles()}
    chosen = set(allowed) if allowed is not None else everything
    return Rules(CATALOG, package, frozenset(chosen - set(package.preselected)), photo_count)


def valid(**changes):
    data = {
        "full_name": "Bea Employee",
        "gender": "female",
        "eye_color": "brown",
        "glasses": "no_glasses",
        "styles": ["navy:shirt", "white:knit"],
        "format": "portrait",
        "agree_terms": True,
        "best_photos": True,
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


def errors_of(data, r=None) -> dict:
    with pytest.raises(ValidationError) as caught:
        SubmissionSchema(rules=r or rules()).load(data)
    return caught.value.messages


def test_a_complete_submission_loads():
    loaded = SubmissionSchema(rules=rules()).load(valid())
    assert loaded["styles"] == ["navy:shirt", "white:knit"]
    assert loaded["agree_terms"] is True


def test_choice_lists_are_small_and_fixed():
    assert list(GENDERS) == ["female", "male", "non_binary"]
    assert set(EYE_COLORS) == {"brown", "hazel", "amber", "green", "blue", "grey"}
    assert list(GLASSES) == ["glasses", "no_glasses"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("full_name", ..., "Please enter your name."),
        ("full_name", "   ", "Please enter your name."),
        ("full_name", "x" * 201, "Please keep your name under 200 characters."),
        ("full_name", "Bea\x00Employee", "Please use only printable characters."),
        ("gender", ..., "Please choose a gender."),
        ("gender", "robot", "Please choose a gender from the list."),
        ("eye_color", "", "Please choose an eye colour."),
        ("eye_color", "purple", "Please choose an eye colour from the list."),
        ("glasses", None, "Please choose whether to show glasses."),
        ("glasses", "monocle", "Please choose whether to show glasses from the list."),
        ("styles", [], "Please choose at least one style."),
        ("styles", ..., "Please choose at least one style."),
        ("format", ..., "Please choose a format."),
        ("format", "square", "Please choose a format from the list."),
        ("agree_terms", ..., "Please accept the terms to continue."),
        ("agree_terms", False, "Please accept the terms to continue."),
        ("best_photos", ..., "Please confirm these are your best photos."),
        ("best_photos", False, "Please confirm these are your best photos."),
    ],
)
def test_each_field_rule_names_its_field(field, value, message):
    messages = errors_of(valid(**{field: value}))
    assert list(messages) == [field]
    assert message in messages[field]


def test_at_least_one_accepted_photo():
    messages = errors_of(valid(), rules(photo_count=0))
    assert messages == {"photos": ["Please add at least one photo of yourself."]}


def test_styles_outside_the_catalog_are_refused():
    messages = errors_of(valid(styles=["navy:shirt", "moon:spacesuit", "nocolon"]))
    assert messages["styles"] == [
        "We don't offer a style called “moon:spacesuit”.",
        "We don't offer a style called “nocolon”.",
    ]


def test_styles_the_org_does_not_allow_are_refused():
    messages = errors_of(valid(styles=["navy:shirt", "white:knit"]), rules(allowed={"navy:shirt"}))
    assert messages["styles"] == ["“Clean white · Smart knitwear” isn't available for your organization."]


def test_styles_beyond_the_package_limit_are_refused():
    messages = errors_of(
        valid(styles=["navy:shirt", "white:knit", "office:knit"], format="standard"), rules(STARTER)
    )
    assert messages["styles"] == ["Your package allows up to 2 styles; you chose 3. Please remove 1."]


def test_preselected_styles_are_not_chosen_again():
    messages = errors_of(valid(styles=["studio-grey:suit"]))
    assert messages["styles"] == ["“Studio grey · Dark suit” is already included with your package."]


def test_repeated_styles_count_once():
    loaded = SubmissionSchema(rules=rules(STARTER)).load(
        valid(styles=["navy:shirt", "navy:shirt", "white:knit"], format="standard")
    )
    assert loaded["styles"] == ["navy:shirt", "white:knit"]


def test_portrait_only_on_a_package_that_offers_it():
    messages = errors_of(valid(styles=["navy:shirt"], format="portrait"), rules(STARTER))
    assert messages == {"format": ["Portrait 4:5 isn't offered with the Starter package."]}


def test_every_failure_is_reported_at_once():
    messages = errors_of({"styles": []}, rules(photo_count=0))
    assert set(messages) == {
        "photos",
        "full_name",
        "gender",
        "eye_color",
        "glasses",
        "styles",
        "format",
        "agree_terms",
        "best_photos",
    }


def test_unknown_fields_are_refused():
    messages = errors_of(valid(is_admin=True))
    assert messages == {"is_admin": ["Unknown field."]}


def test_html_form_values_load():
    form = valid(agree_terms="true", best_photos="on")
    assert SubmissionSchema(rules=rules()).load(form)["best_photos"] is True


def test_progress_schemas_take_partial_data_and_blanks_clear():
    assert PersonalInfoSchema().load({"gender": "male"}) == {"gender": "male"}
    assert PersonalInfoSchema().load({"full_name": "  "}) == {"full_name": None}
    assert StylesSchema(rules=rules()).load({"styles": []}) == {"styles": []}
    with pytest.raises(ValidationError) as caught:
        StylesSchema(rules=rules(STARTER)).load({"format": "portrait"})
    assert "format" in caught.value.messages


def test_without_rules_only_the_shape_is_checked():
    # What the API's request parsing (and the OpenAPI document) use: no org or package yet.
    loaded = SubmissionSchema(partial=True).load({"agree_terms": True, "styles": ["anything:goes"]})
    assert loaded == {"agree_terms": True, "styles": ["anything:goes"]}
