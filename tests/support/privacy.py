"""Helpers of the privacy tests: where a marker string could still be found."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo
from sqlalchemy import select

from libs.db import Base, Database


def png_with_text(pixels: bytes, text: str) -> bytes:
    """The same picture with ``text`` in a PNG text chunk: metadata only the original upload keeps."""
    image = Image.open(io.BytesIO(pixels))
    info = PngInfo()
    info.add_text("Comment", text)
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def rows_with(db: Database, markers: list[str]) -> list[str]:
    """Every table, every column of every row, as text: where a marker is found."""
    found = []
    with db.session(all_orgs=True) as s:
        for table in Base.metadata.sorted_tables:
            for row in s.execute(select(table)).all():
                text = " ".join(str(v) for v in row)
                found += [f"{table.name}: {m}" for m in markers if m in text]
    return found


def files_with(root: Path, markers: list[str]) -> list[str]:
    """Every file under ``root`` (blobs, person models, .eml, the SQLite file): where a marker is found."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [f"{path}: {m}" for m in markers if m.encode() in data]
    return found


class Captured(logging.Handler):
    """Every log record of every logger, formatted with its arguments."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
