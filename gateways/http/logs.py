"""uvicorn's log records, named after the gateway whose server made them.

uvicorn logs through three module-level loggers (``uvicorn.error``, ``uvicorn.access``,
``uvicorn.asgi``), whatever server makes the record. Every task of one server's connections
runs in a copy of the context its listening socket was opened in (asyncio copies the
context into each callback and task), so the gateway sets ``SERVING`` before it starts
uvicorn, and a filter on those loggers reads it back: it prefixes the message with
``Gateway '<name>': ``, sets ``record.gateway`` (a key of the JSON log), and drops the
access lines of a gateway whose ``access_log`` is off. uvicorn's own logging configuration
is never applied (``log_config=None``): its records go to the daemon's handlers.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["SERVING", "UVICORN_LOGGERS", "Serving", "install_filter"]

#: The loggers uvicorn writes to.
UVICORN_LOGGERS = ("uvicorn.error", "uvicorn.access", "uvicorn.asgi")


@dataclass(frozen=True, slots=True)
class Serving:
    """Which gateway's uvicorn server the current context belongs to.

    Attributes:
        gateway: The gateway's name.
        access_log: Whether its ``uvicorn.access`` lines are kept.
    """

    gateway: str
    access_log: bool


#: The gateway whose server runs in this context; ``None`` outside any.
SERVING: ContextVar[Serving | None] = ContextVar("asgi_gateway_http_serving", default=None)


class _GatewayFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        serving = SERVING.get()
        if serving is None or getattr(record, "gateway", None) is not None:
            return True
        if record.name == "uvicorn.access" and not serving.access_log:
            return False
        prefix = f"Gateway {serving.gateway!r}: "
        # A message formatted with args keeps its % directives; escape the prefix for them.
        record.msg = (prefix.replace("%", "%%") if record.args else prefix) + str(record.msg)
        record.gateway = serving.gateway
        return True


_FILTER = _GatewayFilter()


def install_filter() -> None:
    """Put the filter on uvicorn's loggers (once; calling again changes nothing)."""
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
