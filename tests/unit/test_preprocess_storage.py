"""The blob store's derived keys, which let a restarted preparation rewrite its files instead of adding new ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from libs.storage import BlobError, LocalBlobStore, derived_key, is_valid_key

AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_a_derived_key_is_the_same_every_time_and_shaped_like_a_generated_one() -> None:
    key = derived_key("prepared", "jpg", source="photo-1/prepared", at=AT)
    assert key == derived_key("prepared", "jpg", source="photo-1/prepared", at=AT)
    assert is_valid_key(key) and key.startswith("prepared/2026/11/") and "photo-1" not in key
    assert key != derived_key("prepared", "jpg", source="photo-2/prepared", at=AT)
    assert key != derived_key("training", "jpg", source="photo-1/prepared", at=AT)
    # The folder comes from the UTC date, whatever zone the time is given in.
    december_in_kiribati = datetime(2026, 12, 1, 5, 0, tzinfo=timezone(timedelta(hours=14)))  # 30 Nov in UTC
    assert derived_key("prepared", "jpg", source="x", at=december_in_kiribati).startswith("prepared/2026/11/")


def test_put_at_replaces_the_file_under_the_same_key(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    key = derived_key("training", "jpg", source="photo-1/training", at=AT)
    assert store.put_at(key, b"first") == key
    store.put_at(key, b"second")
    assert store.get(key) == b"second"
    assert [p.name for p in store.path(key).parent.iterdir()] == [store.path(key).name]  # no temp files left


@pytest.mark.parametrize("key", ["../etc/passwd", "prepared/2026/11/not-hex.jpg", "prepared/x"])
def test_put_at_refuses_anything_but_a_generated_key(tmp_path: Path, key: str) -> None:
    with pytest.raises(BlobError):
        LocalBlobStore(tmp_path).put_at(key, b"data")


def test_derived_keys_refuse_odd_kinds() -> None:
    with pytest.raises(BlobError):
        derived_key("../up", "jpg", source="x", at=AT)
