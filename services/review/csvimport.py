"""Reading the people to invite: one address, a pasted list (one per line, optionally
``email,name``), or a CSV upload (``email,name``, a header row allowed). Every problem is reported
with its line number; the caller imports nothing unless there are none.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

from services.review.errors import Invalid, TooLarge

MAX_CSV_BYTES = 8 * 1024 * 1024
MAX_LINES = 100_000
MAX_NAME = 200
# Deliberately simple: one @, something on both sides, a dot in the domain, no spaces or commas.
EMAIL = re.compile(r"^[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[^@\s,;<>\"]+$")


@dataclass(frozen=True)
class Invitee:
    line: int
    email: str
    name: str


@dataclass(frozen=True)
class LineError:
    line: int
    text: str
    message: str


def decode_upload(data: bytes) -> str:
    if len(data) > MAX_CSV_BYTES:
        raise TooLarge(
            f"That file is larger than {MAX_CSV_BYTES // (1024 * 1024)} MB. Split it and upload the parts."
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Invalid(
            "That file is not UTF-8 text. Save it as “CSV UTF-8” and upload it again.",
            {"file": [f"Not UTF-8 (byte {exc.start + 1})."]},
        ) from None


def parse(text: str) -> tuple[list[Invitee], list[LineError]]:
    """Rows of ``email[,name]``; blank lines skipped; a first line ``email,name`` is a header."""
    lines = text.splitlines()
    if len(lines) > MAX_LINES:
        raise Invalid(
            f"That list has {len(lines):,} lines; at most {MAX_LINES:,} at a time.",
            {"file": [f"At most {MAX_LINES:,} lines."]},
        )
    invitees: list[Invitee] = []
    errors: list[LineError] = []
    seen: dict[str, int] = {}
    for number, row in enumerate(csv.reader(io.StringIO("\n".join(lines))), start=1):
        raw = ",".join(row)
        cells = [c.strip() for c in row]
        if not any(cells):
            continue
        if number == 1 and cells[0].lower() in ("email", "e-mail", "email address"):
            continue
        email = cells[0].lower()
        name = cells[1] if len(cells) > 1 else ""
        if len(cells) > 2 and any(cells[2:]):
            errors.append(LineError(number, raw, "Too many columns: expected email,name."))
        elif not EMAIL.match(email) or len(email) > 320:
            errors.append(LineError(number, raw, "Not an e-mail address."))
        elif len(name) > MAX_NAME:
            errors.append(LineError(number, raw, f"The name is longer than {MAX_NAME} characters."))
        elif email in seen:
            errors.append(LineError(number, raw, f"Same address as line {seen[email]}."))
        else:
            seen[email] = number
            invitees.append(Invitee(number, email, name))
    return invitees, errors
