"""The errors libs/messaging raises, and the one a handler may raise."""

from __future__ import annotations


class MessagingError(RuntimeError):
    """Base class of this package's errors."""


class BrokerUnavailable(MessagingError):
    """The broker could not be reached (or answered too slowly) within the time allowed."""


class PublishError(MessagingError):
    """A message was not confirmed by the broker: not connected, nacked, or no confirm in time.

    The caller still owns the message: the outbox relay keeps the row unsent and retries it.
    """


class Permanent(Exception):  # noqa: N818 - read as "raise Permanent(...)": a kind of failure, not an error type
    """Raised by a handler for a message that can never succeed (e.g. it refers to a deleted
    session): the consumer dead-letters it at once instead of retrying.

        def handle_session_approved(message, *, uow):
            session = uow.session.get(HeadshotSession, message.session_id)
            if session is None:
                raise Permanent(f"session {message.session_id} does not exist")
    """
