"""The at-least-once backbone: topology, publisher with confirms, outbox relay, consumer runner.

The same API runs on RabbitMQ (``amqp://``, distributed mode) and kombu's in-process broker
(``memory://``, embedded mode). See docs/messaging.md for the topology and the guarantees.
"""

from libs.messaging.broker import check_broker, connect, open_connection, reset_memory_broker
from libs.messaging.bus import Bus
from libs.messaging.consumer import Consumer
from libs.messaging.deadletters import (
    DeadLetter,
    dead_letter_queues,
    discard_dead_letters,
    list_dead_letters,
    queue_depths,
    replay_dead_letters,
)
from libs.messaging.errors import BrokerUnavailable, MessagingError, Permanent, PublishError
from libs.messaging.headers import OUTBOX_ID_HEADER
from libs.messaging.publisher import Publisher
from libs.messaging.relay import OutboxRelay
from libs.messaging.signals import run_consumer_process
from libs.messaging.topology import (
    ConsumerQueues,
    all_consumer_queues,
    consumer_queues,
    dead_letter_queue_name,
    declare_gateway_queue,
    gateway_queue,
    retry_queue_name,
)

__all__ = [
    "OUTBOX_ID_HEADER",
    "BrokerUnavailable",
    "Bus",
    "Consumer",
    "ConsumerQueues",
    "DeadLetter",
    "MessagingError",
    "OutboxRelay",
    "Permanent",
    "PublishError",
    "Publisher",
    "all_consumer_queues",
    "check_broker",
    "connect",
    "consumer_queues",
    "dead_letter_queue_name",
    "dead_letter_queues",
    "declare_gateway_queue",
    "discard_dead_letters",
    "gateway_queue",
    "list_dead_letters",
    "open_connection",
    "queue_depths",
    "replay_dead_letters",
    "reset_memory_broker",
    "retry_queue_name",
    "run_consumer_process",
]
