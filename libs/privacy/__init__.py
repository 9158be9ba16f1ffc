"""Privacy: the one place that deletes personal data, writes its receipts, and runs retention.

receipt = erase_personal_info(uow, hs)                                 # at completion
erasure = delete_session_data(uow, hs, reason="request", actor=user.id)  # rows now ...
account = erase_account(uow, user, actor=admin.id, mail_dir=settings.mail_dir)  # the person, last
uow.commit(); finish_erasures([erasure, account], blobs, settings)      # ... files and dead letters after
report = run_retention(settings, db, blobs, now)                        # the periodic job
"""

from libs.privacy.after_commit import finish_erasures
from libs.privacy.broker import discard_dead_letters_about
from libs.privacy.erasure import (
    ERASED_DOMAIN,
    Erasure,
    delete_session_data,
    erase_account,
    erase_personal_info,
    is_erased,
    purge_uploads,
    remove_files,
    remove_person_model,
)
from libs.privacy.retention import RetentionReport, claim_period, due_for_retention, run_retention

__all__ = [
    "ERASED_DOMAIN",
    "Erasure",
    "RetentionReport",
    "claim_period",
    "delete_session_data",
    "discard_dead_letters_about",
    "erase_account",
    "finish_erasures",
    "due_for_retention",
    "erase_personal_info",
    "is_erased",
    "purge_uploads",
    "remove_files",
    "remove_person_model",
    "run_retention",
]
