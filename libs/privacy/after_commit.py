"""What an erasure removes once its rows are deleted and committed: the files (blobs, person
models, mailbox files) and the dead letters about the erased sessions and accounts. Every place
that deletes personal data on request calls this one function after its commit.

    with db.uow(org_id=...) as uow:
        erasure = delete_session_data(uow, hs, reason="request", actor=user.id)
        uow.commit()
    finish_erasures([erasure], blobs, settings)
"""

from __future__ import annotations

from collections.abc import Sequence

from libs.privacy.broker import discard_dead_letters_about
from libs.privacy.erasure import Erasure, remove_files
from libs.settings import Settings
from libs.storage import BlobStore


def finish_erasures(erasures: Sequence[Erasure], blobs: BlobStore, settings: Settings) -> int:
    """Remove the erasures' files, then discard the dead letters about them; how many files went.
    Neither step raises: what could not be removed is logged with its key or queue."""
    removed = sum(remove_files(erasure, blobs, settings.person_model_dir) for erasure in erasures)
    discard_dead_letters_about(settings, erasures)
    return removed
