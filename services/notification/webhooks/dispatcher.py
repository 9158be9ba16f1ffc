"""The webhook dispatcher: a loop in the notification worker, outside every event handler.

    dispatcher = WebhookDispatcher(db, settings)            # clock= and resolve= are injectable
    dispatcher.run_forever(stop)                            # background thread of the service
    dispatcher.run_once(wait=True)                          # tests: one round, attempts finished

Each round takes the due ``pending`` deliveries, at most one per organization and none of an
organization whose previous attempt is still running, claims each (its ``next_attempt_at`` moves
a lease ahead, so another dispatcher process skips it, and a crash mid-attempt is retried after
the lease) and posts it in a small thread pool. A slow or dead endpoint therefore holds one thread
for at most the timeout and never delays e-mails (other threads) or other organizations.

Schedule: the first attempt when recorded, then retries RETRY_DELAYS after each failure (about
0 s, 5 min, 15 min, 1 h, 6 h); after the last one the delivery is ``failed`` (given up). An
endpoint we refuse to call (a private address, no secret, webhook removed) fails at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, select, update

from libs.db import Database, Organization, WebhookAttempt, WebhookDelivery, utcnow
from libs.db.outages import retry_while_unavailable
from libs.db.webhooks import DELIVERED, FAILED, PENDING
from libs.settings import Settings
from services.notification.webhooks import http
from services.notification.webhooks.addresses import RefusedEndpoint, Target, resolve_endpoint
from services.notification.webhooks.payload import (
    EVENT_HEADER,
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)

log = logging.getLogger("headshots.notification.webhooks")

RETRY_DELAYS = (
    timedelta(0),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=6),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
ROUND_LIMIT = 50  # deliveries looked at per round

Clock = Callable[[], datetime]
Resolver = Callable[..., Target]


@dataclass
class _Outcome:
    """What one attempt gave: an answer (status, first KB) or an error; give_up ends the schedule."""

    at: datetime
    url: str
    status_code: int | None = None
    excerpt: str | None = None
    error: str | None = None
    give_up: bool = False
    latency_ms: float = 0.0


class _GiveUp(Exception):
    """This delivery cannot be attempted as things stand: fail it now, do not retry."""


class WebhookDispatcher:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        resolve: Resolver = resolve_endpoint,
        workers: int = 4,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.resolve = resolve
        self.lease = timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS * 3 + 30)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhook")
        self._busy_orgs: set[str] = set()
        self._lock = threading.Lock()

    # --- the loop ----------------------------------------------------------------------------------
    def run_forever(self, stop: threading.Event) -> None:
        log.info("webhook dispatcher started (every %.1f s)", self.settings.WEBHOOK_POLL_SECONDS)
        try:
            while not stop.wait(self.settings.WEBHOOK_POLL_SECONDS):
                try:
                    self.run_once()
                except Exception:  # the database is away, say: log, and try again next round
                    log.exception("webhook dispatcher round failed")
        finally:
            self._pool.shutdown(wait=True)
            log.info("webhook dispatcher stopped")

    def run_once(self, *, wait_for_attempts: bool = False) -> int:
        """Start the attempts due now; returns how many were started."""
        now = self.clock()
        futures: list[Future[None]] = []
        for delivery_id, org_id in self._claim_due(now):
            futures.append(self._pool.submit(self._attempt_guarded, delivery_id, org_id))
        if wait_for_attempts:
            wait(futures)
            for f in futures:
                f.result()
        return len(futures)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _claim_due(self, now: datetime) -> list[tuple[int, str]]:
        claimed: list[tuple[int, str]] = []
        with self.db.uow(all_orgs=True) as uow:
            rows = uow.session.execute(
                select(WebhookDelivery.id, WebhookDelivery.org_id, WebhookDelivery.next_attempt_at)
                .where(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now)
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(ROUND_LIMIT)
            ).all()
            for delivery_id, org_id, due in rows:
                with self._lock:
                    if org_id in self._busy_orgs:
                        continue  # one attempt per organization at a time: a dead endpoint waits alone
                    # Optimistic claim: only one dispatcher moves this exact due time.
                    moved = cast(
                        CursorResult[Any],
                        uow.session.execute(
                            update(WebhookDelivery)
                            .where(
                                WebhookDelivery.id == delivery_id,
                                WebhookDelivery.status == PENDING,
                                WebhookDelivery.next_attempt_at == due,
                            )
                            .values(next_attempt_at=now + self.lease)
                            .execution_options(synchronize_session=False)
                        ),
                    ).rowcount
                    if moved:
                        self._busy_orgs.add(org_id)
                        claimed.append((delivery_id, org_id))
            try:
                uow.commit()
            except Exception:
                with self._lock:  # nothing was claimed after all
                    self._busy_orgs.difference_update(org for _, org in claimed)
                raise
        return claimed

    # --- one attempt -------------------------------------------------------------------------------
    def _attempt_guarded(self, delivery_id: int, org_id: str) -> None:
        try:
            self.attempt(delivery_id, org_id)
        except Exception:
            log.exception("webhook delivery %s: attempt could not be recorded", delivery_id)
        finally:
            with self._lock:
                self._busy_orgs.discard(org_id)

    def attempt(self, delivery_id: int, org_id: str) -> None:
        """Post one delivery now and record what happened."""
        with self.db.uow(org_id=org_id) as uow:
            delivery = uow.session.get(WebhookDelivery, delivery_id)
            org = uow.session.get(Organization, org_id)
            if delivery is None or delivery.status != PENDING:
                return
            url = (org.webhook_url if org else None) or ""
            secret = org.webhook_secret if org else None
            body, message_id, event = delivery.body, delivery.message_id, delivery.event

        outcome = _Outcome(at=self.clock(), url=url)
        started = time.monotonic()
        try:
            if not url:
                raise _GiveUp("the organization has no webhook endpoint any more")
            if not secret:
                raise _GiveUp("the organization has no webhook secret to sign with")
            try:
                target = self.resolve(url, allow_private=self.settings.WEBHOOK_ALLOW_PRIVATE)
            except RefusedEndpoint as exc:
                raise _GiveUp(str(exc)) from None
            timestamp = int(outcome.at.timestamp())
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "Headshots-Webhooks/1",
                EVENT_HEADER: event,
                ID_HEADER: message_id,
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: sign(secret, timestamp, body),
            }
            answer = http.post(target, body.encode(), headers, self.settings.WEBHOOK_TIMEOUT_SECONDS)
            outcome.status_code, outcome.excerpt = answer.status, answer.excerpt
            if not 200 <= answer.status < 300:
                outcome.error = f"the endpoint answered {answer.status}"
        except _GiveUp as exc:
            outcome.error, outcome.give_up = str(exc), True
        except Exception as exc:  # refused, reset, timeout, TLS, bad answer, DNS
            outcome.error = f"{type(exc).__name__}: {exc}"
        outcome.latency_ms = (time.monotonic() - started) * 1000
        # Waits out a short database outage (within the lease): unrecorded, the attempt would be
        # made again once the lease ends, and the endpoint would get the event twice.
        retry_while_unavailable(
            lambda: self._record(delivery_id, org_id, outcome), seconds=self.lease.total_seconds() / 2
        )

    def _record(self, delivery_id: int, org_id: str, outcome: _Outcome) -> None:
        with self.db.uow(org_id=org_id) as uow:
            delivery = uow.get_for_update(WebhookDelivery, delivery_id)
            if delivery is None:
                return
            uow.session.add(
                WebhookAttempt(
                    org_id=org_id,
                    delivery_id=delivery_id,
                    attempted_at=outcome.at,
                    attempt=delivery.attempts + 1,
                    url=outcome.url[:500],
                    status_code=outcome.status_code,
                    latency_ms=round(outcome.latency_ms, 1),
                    error=outcome.error,
                    response_excerpt=outcome.excerpt,
                )
            )
            delivery.attempts += 1
            delivery.last_error = outcome.error
            if outcome.error is None:
                delivery.status, delivery.delivered_at, delivery.next_attempt_at = DELIVERED, outcome.at, None
                log.info(
                    "webhook %s delivered to %s (%s, %.0f ms)",
                    delivery_id,
                    outcome.url,
                    outcome.status_code,
                    outcome.latency_ms,
                )
            elif outcome.give_up or delivery.step >= len(RETRY_DELAYS):
                delivery.status, delivery.next_attempt_at = FAILED, None
                log.warning(
                    "webhook %s given up after %d attempts: %s", delivery_id, delivery.attempts, outcome.error
                )
            else:
                delivery.next_attempt_at = outcome.at + RETRY_DELAYS[delivery.step]
                delivery.step += 1
                log.warning(
                    "webhook %s attempt failed (%s); next at %s",
                    delivery_id,
                    outcome.error,
                    delivery.next_attempt_at.isoformat(timespec="seconds"),
                )
            uow.commit()
