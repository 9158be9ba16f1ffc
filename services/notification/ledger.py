"""The ledger of e-mails: at most one row per (event message id, template), written in its own
short transactions around the SMTP conversation, so that it survives the event handler's rollback.

    claim = ledger.claim(key, now)          # commits status "sending" before anything is sent
    reply = transport.send(...)
    ledger.finish(key, "sent", now, attempt=Attempt(claim.attempts, started, 42.0, reply=reply))
                                            # commits "sent" right after the server said 250

``claim`` says whether to send: a row already ``sent`` or ``failed`` means the e-mail was dealt
with (a redelivered event); a row another worker is ``sending`` right now (its claim younger than
the lease) raises :class:`SendInProgress`, which the consumer retries later. A ``sending`` row
older than the lease belongs to a worker that died mid-send: it may or may not have been accepted
(docs/notification.md, "the one window"), and it is sent again, with the same Message-ID.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError

from libs.db import Database, EmailAttempt, EmailSend
from libs.db.outages import retry_while_unavailable

SENDING, PENDING, SENT, FAILED = "sending", "pending", "sent", "failed"


class SendInProgress(RuntimeError):
    """Another worker holds a fresh claim on this e-mail: try again after a delay."""


@dataclass(frozen=True)
class SendKey:
    org_id: str
    message_id: str
    template: str
    session_id: str | None = None
    user_id: str | None = None


@dataclass(frozen=True)
class Claim:
    go: bool  # True: send now; False: already sent or failed for good
    status: str
    attempts: int
    resumed: bool = False  # True: a previous claim ended without an outcome


@dataclass(frozen=True)
class Attempt:
    """One try at the server, recorded with its outcome: when, how long, what it answered."""

    number: int
    started_at: datetime
    latency_ms: float
    reply: str | None = None
    error: str | None = None


class SendLedger:
    def __init__(self, db: Database, lease: timedelta) -> None:
        self.db = db
        self.lease = lease

    def claim(self, key: SendKey, now: datetime) -> Claim:
        with self.db.uow(org_id=key.org_id) as uow:
            row = uow.session.scalar(self._query(key))
            if row is None:
                row = EmailSend(
                    org_id=key.org_id,
                    message_id=key.message_id,
                    template=key.template,
                    session_id=key.session_id,
                    user_id=key.user_id,
                    status=SENDING,
                    attempts=1,
                    claimed_at=now,
                )
                uow.session.add(row)
                try:
                    uow.commit()
                except IntegrityError:  # another worker inserted it a moment ago
                    raise SendInProgress(
                        f"{key.template} for {key.message_id} is being sent elsewhere"
                    ) from None
                return Claim(True, SENDING, 1)
            row = uow.get_for_update(EmailSend, row.id)
            assert row is not None
            if row.status in (SENT, FAILED):
                return Claim(False, row.status, row.attempts)
            resumed = row.status == SENDING
            if resumed and row.claimed_at is not None and now - row.claimed_at < self.lease:
                raise SendInProgress(
                    f"{key.template} for {key.message_id} was claimed {(now - row.claimed_at).seconds} s ago"
                )
            row.status = SENDING
            row.claimed_at = now
            row.attempts += 1
            attempts = row.attempts
            uow.commit()
            return Claim(True, SENDING, attempts, resumed=resumed)

    def finish(
        self,
        key: SendKey,
        status: str,
        now: datetime,
        error: str | None = None,
        *,
        attempt: Attempt | None = None,
        subject: str | None = None,
    ) -> None:
        """Record the outcome: ``sent``, ``failed`` (permanent) or ``pending`` (transient), with
        the attempt that led to it (none when nothing was claimed), the e-mail's subject and, when
        the key names one, the recipient's user id.

        Waits out a short database outage (within the lease): the e-mail is already with the
        server, and an outcome left unrecorded has the event retried into SendInProgress until it
        is dead-lettered with the row stuck in ``sending`` (seen when PostgreSQL restarted)."""
        retry_while_unavailable(
            lambda: self._finish(key, status, now, error, attempt, subject),
            seconds=self.lease.total_seconds() / 2,
        )

    def _finish(
        self,
        key: SendKey,
        status: str,
        now: datetime,
        error: str | None,
        attempt: Attempt | None,
        subject: str | None,
    ) -> None:
        with self.db.uow(org_id=key.org_id) as uow:
            row = uow.session.scalar(self._query(key))
            if row is None:  # a failure found before anything was claimed (no such person...)
                row = EmailSend(
                    org_id=key.org_id,
                    message_id=key.message_id,
                    template=key.template,
                    session_id=key.session_id,
                    user_id=key.user_id,
                    status=status,
                    attempts=0,
                )
                uow.session.add(row)
            row.status = status
            row.last_error = error
            if key.user_id is not None:  # the recipient, once the e-mail was built
                row.user_id = key.user_id
            row.claimed_at = None
            if subject is not None:
                row.subject = subject[:200]
            if status == SENT:
                row.sent_at = now
            if attempt is not None:
                uow.flush()  # the row's id, for a send recorded just now
                uow.session.add(
                    EmailAttempt(
                        org_id=key.org_id,
                        send_id=row.id,
                        attempt=attempt.number,
                        started_at=attempt.started_at,
                        latency_ms=round(attempt.latency_ms, 1),
                        outcome=status,
                        reply=attempt.reply,
                        error=attempt.error,
                    )
                )
            uow.commit()

    @staticmethod
    def _query(key: SendKey) -> Select[EmailSend]:
        return select(EmailSend).where(
            EmailSend.message_id == key.message_id, EmailSend.template == key.template
        )
