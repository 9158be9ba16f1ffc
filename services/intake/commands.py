"""What a person asks intake to do, as small records: the pages and the API load a schema
(schemas.py) and build one of these; the domain (submission.py) takes it and never sees a request.

    SavePersonalInfo("a51b…", full_name="Bea Employee", gender="female")   # the rest left as saved
    ChooseStyles("a51b…", styles=("navy:suit",))                           # format left as saved
    SubmitSession("a51b…", Answers(full_name="Bea Employee", …, styles=("navy:suit",), format="standard"))

A field left :data:`UNSET` is not changed; ``None`` clears it. :class:`Answers` is the one place
that maps the six answers to the session's columns (read with ``Answers.of``, written with
``write_to``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Final

from libs.db import HeadshotSession


class Unset:
    """Not given: leave the saved value as it is."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset()

PERSONAL_INFO = ("full_name", "gender", "eye_color", "glasses")


@dataclass(frozen=True)
class Answers:
    """The six answers of a session: personal info, chosen styles (pre-selected excluded), format."""

    full_name: str | None = None
    gender: str | None = None
    eye_color: str | None = None
    glasses: str | None = None
    styles: tuple[str, ...] = ()
    format: str | None = None

    @classmethod
    def of(cls, hs: HeadshotSession) -> Answers:
        return cls(
            full_name=hs.full_name,
            gender=hs.gender,
            eye_color=hs.eye_color,
            glasses=hs.glasses,
            styles=tuple(c.style_id for c in hs.styles if not c.preselected),
            format=hs.format_id,
        )

    def write_to(self, hs: HeadshotSession) -> None:
        """Personal info and format onto the row (styles are rows of their own: ``replace_styles``)."""
        hs.full_name = self.full_name
        hs.gender = self.gender
        hs.eye_color = self.eye_color
        hs.glasses = self.glasses
        hs.format_id = self.format

    def as_dict(self) -> dict[str, Any]:
        """As the schemas name them (``styles`` a list), e.g. to merge a form over what was saved."""
        return {**asdict(self), "styles": list(self.styles)}

    def personal_info(self) -> dict[str, str | None]:
        return {name: getattr(self, name) for name in PERSONAL_INFO}

    @classmethod
    def from_loaded(cls, data: dict[str, Any]) -> Answers:
        """From a loaded SubmissionSchema (its confirmations are checked there, not kept here)."""
        return cls(
            **{f.name: data[f.name] for f in fields(cls) if f.name != "styles"}, styles=tuple(data["styles"])
        )


def _given(command: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(command, name) for name in names if not isinstance(getattr(command, name), Unset)}


@dataclass(frozen=True)
class SavePersonalInfo:
    """Save some personal-info fields as the person goes (``None`` clears one)."""

    session_id: str
    full_name: str | None | Unset = UNSET
    gender: str | None | Unset = UNSET
    eye_color: str | None | Unset = UNSET
    glasses: str | None | Unset = UNSET

    def changes(self) -> dict[str, str | None]:
        return _given(self, PERSONAL_INFO)


@dataclass(frozen=True)
class ChooseStyles:
    """Save the chosen styles and/or the format (an empty list is fine until submit)."""

    session_id: str
    styles: tuple[str, ...] | Unset = UNSET
    format: str | None | Unset = UNSET

    @classmethod
    def from_loaded(cls, session_id: str, data: dict[str, Any]) -> ChooseStyles:
        styles = data.get("styles", UNSET)
        return cls(
            session_id,
            styles=tuple(styles or ()) if not isinstance(styles, Unset) else UNSET,
            format=data.get("format", UNSET),
        )


@dataclass(frozen=True)
class SubmitSession:
    """Submit with these answers (checked against the session's rules by the edge, on the answers
    saved so far merged with what the request gave)."""

    session_id: str
    answers: Answers
