"""What an erasure takes from the broker: dead letters about the person.

Events carry ids only, but a message that broke its contract is kept whole in a dead-letter queue
(libs/messaging/deadletters.py) until ops replays or discards it, and whatever it carried with it.
After an erasure commits, the dead letters whose envelope names one of the erased sessions (or,
for an account, the person's id in its data) are discarded: nothing would be left to replay them
against.

    erasures = delete_member_data(...); uow.commit()
    discarded = discard_dead_letters_about(settings, erasures)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from libs.messaging.deadletters import DEFAULT_LIMIT, discard_dead_letters, list_dead_letters, queue_depths
from libs.messaging.topology import DEAD_SUFFIX
from libs.privacy.erasure import Erasure
from libs.settings import Settings

log = logging.getLogger("headshots.privacy")


def _concerns(body: str, session_ids: set[str], user_ids: set[str]) -> bool:
    try:
        envelope = json.loads(body)
    except ValueError:
        return False  # not even JSON: nothing says whose it is (ops sees it in the dead letters)
    if not isinstance(envelope, dict):
        return False
    data = envelope.get("data")
    user = data.get("user_id") if isinstance(data, dict) else None
    return envelope.get("session_id") in session_ids or user in user_ids


def discard_dead_letters_about(settings: Settings, erasures: Iterable[Erasure]) -> int:
    """Discard every dead letter about the erased sessions and accounts; how many went. A broker
    that cannot be reached is logged, not raised: the erasure itself has committed."""
    session_ids: set[str] = set()
    user_ids: set[str] = set()
    for erasure in erasures:
        session_ids.update(erasure.session_ids)
        if erasure.receipt.session_id is not None:
            session_ids.add(erasure.receipt.session_id)
        elif erasure.receipt.user_id is not None:  # the account itself
            user_ids.add(erasure.receipt.user_id)
    if not session_ids and not user_ids:
        return 0
    discarded = 0
    try:
        for queue, depth in queue_depths(settings).items():
            if not queue.endswith(DEAD_SUFFIX) or depth == 0:
                continue
            for dead in list_dead_letters(settings, queue, limit=DEFAULT_LIMIT):
                if dead.message_id and _concerns(dead.body, session_ids, user_ids):
                    discarded += discard_dead_letters(settings, queue, message_id=dead.message_id)
    except Exception as exc:  # the broker is away: ops can still discard them by hand
        log.warning("could not discard dead letters about erased data: %r", exc)
    if discarded:
        log.info("discarded %d dead letter(s) about erased data", discarded)
    return discarded
