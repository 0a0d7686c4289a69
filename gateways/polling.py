"""Long polling a chat platform for ever: Telegram's ``getUpdates``, Zulip's event queue.

A gateway's ``poll()`` long polls until one poll fails; ``poll_forever`` runs it again and
again, waiting out the gateway's ``reconnect`` backoff (``gateways.options.Reconnect``) when
a poll failed before any succeeded, and at once after a failure that followed good polls:
each outage starts the backoff over.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from tenacity import RetryCallState

from gateways.errors import GatewayError
from gateways.options import Reconnect

__all__ = ["PollFailed", "poll_forever"]


class PollFailed(GatewayError):
    """A long poll failed (a connection dropped, a timeout, a 5xx or 409 answer): wait out
    the backoff, then poll again."""


async def poll_forever(
    gateway: str,
    reconnect: Reconnect,
    poll: Callable[[], Awaitable[bool]],
    fail: Callable[[GatewayError], None],
    logger: logging.Logger,
) -> None:
    """Poll until ``poll`` returns False (stopped, or the credentials were refused).

    Args:
        gateway: The gateway's name, for messages.
        reconnect: The backoff between polls after a failure.
        poll: Long polls until one fails: raises ``PollFailed`` if the first did (the
            backoff waits), returns True after others did (poll again at once), False to
            stop.
        fail: The gateway's ``fail``, called with a ``GatewayError`` if ``poll`` raised
            anything else (a bug: polling stops loudly rather than unseen).
        logger: The gateway's logger, for each wait and for that failure.
    """

    def log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        logger.warning("Gateway %r: %s; polling again in %.1f s", gateway, exc, delay)

    while True:
        retrying = reconnect.retrying(PollFailed, log_retry)
        try:
            again = bool(await retrying(poll))
        except Exception as exc:
            logger.exception("Gateway %r: polling stopped", gateway)
            fail(GatewayError(f"gateway {gateway!r}: polling stopped: {exc!r}"))
            return
        if not again:
            return
