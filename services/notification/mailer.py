"""Sending one e-mail for one event, exactly once as far as SMTP allows.

    mailer.deliver(SendKey(org_id, message_id, "ready", session_id=...), build=lambda: Email(...))

1. claim the (message id, template) row in the ledger, committed: nothing is sent without it;
2. build the e-mail (address and name read from the database now, not from the event); the person
   it is for is now known, and their user id is recorded on the row with the outcome (session events
   carry no user id: ops names the recipient from it);
3. send it; then record ``sent`` — or ``failed`` for a permanent refusal (the event is done, support
   sees it), or ``pending`` for a transient one and raise :class:`TransientMailError`, which the
   consumer (libs/messaging) retries after RETRY_DELAY_MS.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from libs.settings import Settings
from services.notification.emails import BadAddress, Email, compose
from services.notification.ledger import FAILED, PENDING, SENT, Attempt, Claim, SendKey, SendLedger
from services.notification.transport import PermanentMailError, TransientMailError, Transport

log = logging.getLogger("headshots.notification.mail")


class NoRecipient(LookupError):
    """The person (or session) the e-mail is for does not exist, or may not receive it."""


Clock = Callable[[], datetime]


class Mailer:
    def __init__(self, settings: Settings, ledger: SendLedger, transport: Transport, clock: Clock) -> None:
        self.settings = settings
        self.ledger = ledger
        self.transport = transport
        self.clock = clock

    def deliver(self, key: SendKey, build: Callable[[], Email]) -> str:
        """Send the e-mail ``build()`` describes unless the ledger says it was dealt with; returns
        the ledger's status. Raises TransientMailError / SendInProgress to be retried later."""
        claim = self.ledger.claim(key, self.clock())
        if not claim.go:
            log.info(
                "%s e-mail for %s already %s: not sent again", key.template, key.message_id[:8], claim.status
            )
            return claim.status
        if claim.resumed:
            log.warning(
                "%s e-mail for %s: an earlier attempt ended without an outcome; sending again",
                key.template,
                key.message_id[:8],
            )
        tried = _Try(claim, self.clock(), time.monotonic())
        try:
            email = build()
            key = replace(key, user_id=email.recipient.user_id)  # the person, read just now
            message = compose(self.settings, email, message_id=key.message_id)
        except (NoRecipient, BadAddress) as exc:
            return self._failed(key, tried.ended(error=str(exc)))
        except Exception as exc:
            # Nothing was sent (e.g. the database went away while reading the address): release
            # the claim, or every redelivery within the lease meets SendInProgress and the event
            # is dead-lettered with the e-mail never sent (seen when PostgreSQL restarted).
            error = f"{type(exc).__name__}: {exc}"[:500]
            self.ledger.finish(key, PENDING, self.clock(), error, attempt=tried.ended(error=error))
            raise
        try:
            reply = self.transport.send(message, key=f"{key.message_id}.{key.template}")
        except PermanentMailError as exc:
            return self._failed(key, tried.ended(error=str(exc)), email.subject)
        except TransientMailError as exc:
            attempt = tried.ended(error=str(exc))
            self.ledger.finish(key, PENDING, self.clock(), str(exc), attempt=attempt, subject=email.subject)
            raise
        # The one window: the server has the e-mail and this commit has not happened yet.
        attempt = tried.ended(reply=reply)
        self.ledger.finish(key, SENT, self.clock(), attempt=attempt, subject=email.subject)
        log.info(
            "%s e-mail for %s sent (attempt %d, %.0f ms)",
            key.template,
            key.message_id[:8],
            claim.attempts,
            attempt.latency_ms,
        )
        return SENT

    def _failed(self, key: SendKey, attempt: Attempt, subject: str | None = None) -> str:
        self.ledger.finish(key, FAILED, self.clock(), attempt.error, attempt=attempt, subject=subject)
        log.warning("%s e-mail for %s failed for good: %s", key.template, key.message_id[:8], attempt.error)
        return FAILED


class _Try:
    """The attempt a claim starts: its number, when it started, and a monotonic start for latency."""

    def __init__(self, claim: Claim, started_at: datetime, started: float) -> None:
        self.claim, self.started_at, self.started = claim, started_at, started

    def ended(self, *, reply: str | None = None, error: str | None = None) -> Attempt:
        latency = (time.monotonic() - self.started) * 1000
        return Attempt(self.claim.attempts, self.started_at, latency, reply=reply, error=error)
