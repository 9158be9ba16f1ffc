"""Dependency injection for handlers: a handler names the keyword arguments it wants.

    def handle_session_submitted(message, *, uow, publish, mailer): ...
    bound = BoundHandler.of(handle_session_submitted, available={"uow", "publish", "mailer"})
    bound(message, {"uow": uow, "publish": uow.add_message, "mailer": mailer})

A handler that names a dependency nobody provides is a ``TypeError`` when the consumer is built,
not at the first message; a ``**kwargs`` handler gets all of them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from libs.contracts import Message
from libs.db import UnitOfWork

Handler = Callable[..., Any]

# What the runner itself provides, besides the consumer's deps.
RUNNER_PROVIDES = frozenset({"uow", "publish"})


@dataclass
class BoundHandler:
    """A handler with the names of the keyword arguments it takes."""

    handler: Handler
    wants: frozenset[str]
    takes_all: bool

    @classmethod
    def of(cls, handler: Handler, available: set[str]) -> BoundHandler:
        params = list(inspect.signature(handler).parameters.values())[1:]  # the first is the message
        takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        named = [p for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
        missing = [p.name for p in named if p.default is p.empty and p.name not in available]
        if missing:
            raise TypeError(
                f"{getattr(handler, '__name__', handler)} needs {missing}; deps give {sorted(available)}"
            )
        return cls(handler, frozenset(p.name for p in named), takes_all)

    def __call__(self, message: Message, available: Mapping[str, Any]) -> Any:
        kwargs = (
            dict(available) if self.takes_all else {k: v for k, v in available.items() if k in self.wants}
        )
        return self.handler(message, **kwargs)


def injectables(uow: UnitOfWork, deps: Mapping[str, Any]) -> dict[str, Any]:
    return {"uow": uow, "publish": uow.add_message, **deps}
