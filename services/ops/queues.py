"""Queue figures for the Queues page and the ops sampler.

    stats = queue_stats(settings)    # [QueueStat(name, ready, unacked, consumers, publish_rate, deliver_rate)]

From RabbitMQ's management API when RABBITMQ_MANAGEMENT_URL is set (ready, unacked, consumers and
rates of every queue of the vhost); otherwise from passive declares of the queues the topology
derives from SUBSCRIPTIONS (ready and consumers; unacked and rates unknown). In the embedded mode
the same passive declares read kombu's in-process queues.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from base64 import b64encode
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from libs.messaging import all_consumer_queues, open_connection
from libs.settings import Settings

log = logging.getLogger("headshots.ops.queues")


@dataclass(frozen=True)
class QueueStat:
    name: str
    ready: int
    unacked: int | None = None
    consumers: int | None = None
    publish_rate: float | None = None
    deliver_rate: float | None = None

    @property
    def kind(self) -> str:
        return self.name.rsplit(".", 1)[-1] if self.name.endswith((".dead", ".retry")) else "work"


def _vhost(settings: Settings) -> str:
    path = urlsplit(settings.BROKER_URL).path.lstrip("/")
    return unquote(path) or "/"


def from_management(settings: Settings, timeout: float = 3.0) -> list[QueueStat]:
    base = urlsplit(settings.RABBITMQ_MANAGEMENT_URL)
    url = (
        f"{base.scheme}://{base.hostname}:{base.port or 15672}/api/queues/{quote(_vhost(settings), safe='')}"
    )
    request = urllib.request.Request(url)
    if base.username:
        token = b64encode(f"{unquote(base.username)}:{unquote(base.password or '')}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (a configured URL)
        rows = json.load(response)
    stats = []
    for row in rows:
        rates = row.get("message_stats") or {}
        stats.append(
            QueueStat(
                name=row["name"],
                ready=int(row.get("messages_ready") or 0),
                unacked=int(row.get("messages_unacknowledged") or 0),
                consumers=int(row.get("consumers") or 0),
                publish_rate=float((rates.get("publish_details") or {}).get("rate", 0.0)),
                deliver_rate=float((rates.get("deliver_get_details") or {}).get("rate", 0.0)),
            )
        )
    return sorted(stats, key=lambda s: s.name)


def from_declares(settings: Settings) -> list[QueueStat]:
    stats = []
    conn = open_connection(settings, name="ops queue stats")
    try:
        channel = conn.channel()
        for q in all_consumer_queues(settings):
            for queue in q.all():
                try:
                    _, ready, consumers = queue(channel).queue_declare(passive=True)
                except Exception:  # not declared yet: RabbitMQ closes the channel, open another
                    channel = conn.channel()
                    ready, consumers = 0, 0
                stats.append(QueueStat(name=str(queue.name), ready=int(ready), consumers=int(consumers)))
    finally:
        conn.release()
    return stats


def queue_stats(settings: Settings) -> list[QueueStat]:
    if settings.RABBITMQ_MANAGEMENT_URL and not settings.embedded_broker:
        try:
            return from_management(settings)
        except (OSError, ValueError) as exc:
            log.warning("management API unavailable (%s); using passive declares", exc)
    return from_declares(settings)
