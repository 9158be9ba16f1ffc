"""Person models on disk: the engine's files, the photos they were prepared from, and a record.

    files = ModelFiles(settings.person_model_dir)
    paths = files.write_photos(model_id, blobs, keys)    # copies the engine reads (and may keep using)
    record = files.save_record(model_id, trained)        # PersonModel.path points here
    trained = files.load_record(record)                  # None if gone or unreadable
    files.remove(record)                                 # everything above; removing twice is fine

The record is the engine's :class:`TrainedModel` as JSON (path, trigger, base model...), so a worker
that restarts, or another worker sharing the volume, can render with a model it did not prepare.
Photos are copied next to the model because the studio engine reads its reference photo at render
time, and blobs may live in a remote store.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from libs.storage import BlobStore
from services.generation.engines import TrainedModel, write_json_atomic


class ModelFiles:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def photos_dir(self, model_id: str) -> Path:
        return self.root / "photos" / model_id

    def record_path(self, model_id: str) -> Path:
        return self.root / "records" / f"{model_id}.json"

    def write_photos(self, model_id: str, blobs: BlobStore, keys: Sequence[str]) -> list[Path]:
        folder = self.photos_dir(model_id)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for number, key in enumerate(keys, start=1):
            # Preparation's order (best first) survives in the names: engines may rely on it.
            path = folder / f"{number:02d}{Path(key).suffix or '.jpg'}"
            path.write_bytes(blobs.get(key))
            paths.append(path)
        return paths

    def save_record(self, model_id: str, trained: TrainedModel) -> Path:
        path = self.record_path(model_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, trained.to_dict())
        return path

    def load_record(self, record: Path | str) -> TrainedModel | None:
        try:
            trained = TrainedModel.from_dict(json.loads(Path(record).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return trained if all(p.is_file() for p in trained.files()) else None

    def remove(self, record: Path | str) -> None:
        record = Path(record)
        try:
            trained: TrainedModel | None = TrainedModel.from_dict(json.loads(record.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            trained = None
        if trained is not None:
            for path in trained.files():
                path.unlink(missing_ok=True)
        shutil.rmtree(self.photos_dir(record.stem), ignore_errors=True)
        record.unlink(missing_ok=True)
