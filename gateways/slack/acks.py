"""When the Slack gateway acknowledges what Slack sent: once the application handled it.

Slack keeps an Events API event until it is acknowledged, a Socket Mode envelope by the
``{"envelope_id": ...}`` answer, an Events API request by HTTP 200, and sends it again
(``retry_attempt``, ``X-Slack-Retry-Num``) when no answer came within 3 seconds
(https://docs.slack.dev/apis/events-api/, "Retries";
https://docs.slack.dev/apis/events-api/using-socket-mode). Bolt's
``process_before_response`` keeps the answer until the gateway's listener returns; the
listener returns once every chat event made of the delivery was handled, here or by the
daemon that owns the conversation (a cluster: ``gateways.ownership``), and at most
``ack_wait`` seconds later. So a delivery taken by a daemon that dies before its events
were handled is sent again by Slack, to another connection.

- A ``Delivery`` is one envelope or request: ``given()`` for each event dispatched of it,
  ``done()`` as each is handled (``SlackGateway.tracked_done``), ``dispatched()`` once the
  payload was turned into all its events; it is handled when all three agree.
- ``Deliveries`` remembers the recent ones by ``event_id`` (``dedupe_size``): a delivery
  Slack sends again is not dispatched again; its answer waits for the first one's events.
- A delivery still unhandled after ``ack_wait`` seconds is acknowledged anyway (Slack would
  otherwise send it again while it is handled); one unhandled when the gateway stops is
  refused (``NotHandled``: Bolt answers 503, Socket Mode sends no acknowledgement), so that
  Slack sends it again to the next daemon.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateways import tracking
from gateways.containers import BoundedMap
from layer.types import Message

__all__ = ["Deliveries", "Delivery", "NotHandled", "SlackEvent"]


class NotHandled(Exception):
    """A delivery's events were not handled when the gateway began to stop: it is not
    acknowledged, so that Slack sends it again."""


class Delivery:
    """One Socket Mode envelope or Events API request, handled once every chat event made of
    it was handled (see the module)."""

    __slots__ = ("_dispatching", "_open", "handled")

    def __init__(self) -> None:
        #: Resolved once the delivery is handled.
        self.handled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._open = 0
        self._dispatching = True

    def given(self) -> None:
        """An event made of it is about to be dispatched."""
        self._open += 1

    def done(self) -> None:
        """One of its events was handled (or will never be: its dispatch failed)."""
        self._open -= 1
        self._settle()

    def dispatched(self) -> None:
        """Its payload was turned into all its events (none, for the bot's own message)."""
        self._dispatching = False
        self._settle()

    def _settle(self) -> None:
        if not self._dispatching and self._open <= 0 and not self.handled.done():
            self.handled.set_result(None)

    async def wait(self, within: float) -> bool:
        """Wait up to ``within`` seconds for the delivery to be handled; whether it was."""
        if self.handled.done():
            return True
        try:
            async with asyncio.timeout(within):
                await asyncio.shield(self.handled)
        except TimeoutError:
            return False
        return True


class SlackEvent(tracking.TrackedEvent):
    """A chat event made of one Slack delivery; ``delivery`` says which."""

    __slots__ = ("delivery",)

    def __init__(self, delivery: Delivery, event: Message) -> None:
        super().__init__(event)
        self.delivery = delivery


class Deliveries:
    """The recent deliveries by ``event_id``, so that one Slack sends again is recognised.

    Args:
        size: How many ``event_id`` s are remembered (``dedupe_size``).
    """

    def __init__(self, size: int) -> None:
        self._recent: BoundedMap[str, Delivery] = BoundedMap(size)

    def take(self, body: dict[str, Any]) -> tuple[Delivery, bool]:
        """The delivery of an Events API body, and whether it is new: False when Slack sent
        its ``event_id`` before (the first delivery's, handled or not, is returned)."""
        event_id = body.get("event_id")
        if not isinstance(event_id, str):
            return Delivery(), True
        seen = self._recent.get(event_id)
        if seen is not None:
            return seen, False
        delivery = Delivery()
        self._recent.put(event_id, delivery)
        return delivery, True
