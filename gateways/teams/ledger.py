"""Which activities the Teams gateway took and handled, and where each conversation's Bot
Connector is: at least once, never twice, across restarts.

The Bot Connector POSTs each activity to the messaging endpoint; the gateway answers only
once the application handled the events made of it (or ``activity_wait`` passed), and 503
if it stops first, so an activity is not lost to a gateway that stops. An activity POSTed
again (a retry after a failed or slow answer) is recognised by its key
(``<conversation>/<activity id>``) and not delivered twice.

With a ``state_path``, ``{"handled": [<keys>, ...], "service_urls": {<conversation>: <url>}}``
is kept in that file (written atomically after each change; the newest ``MAX_HANDLED`` keys),
so a restarted gateway skips what it handled before the restart, and can post in a
conversation it heard from before (``serviceUrl`` is per conversation: "Bot Framework
activity schema", https://github.com/microsoft/botframework-sdk/blob/main/specs/botframework-activity/botframework-activity.md#service-url).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from gateways import tracking
from gateways.state_file import StateFile

__all__ = ["MAX_HANDLED", "ActivityLedger", "TrackedEvent"]

logger = logging.getLogger("gateways.teams")

#: Handled activity keys remembered, the newest (an activity is retried for minutes, not days).
MAX_HANDLED = 10_000


class TrackedEvent(tracking.TrackedEvent):
    """A chat event made of one activity; ``activity_key`` says which."""

    __slots__ = ("activity_key",)

    def __init__(self, activity_key: str, event: dict[str, Any]) -> None:
        super().__init__(event)
        self.activity_key = activity_key


class ActivityLedger:
    """The activities in hand and handled, and the conversations' Bot Connectors.

    Args:
        gateway: The gateway's name, for messages.
        state_path: The file to keep the state in, or ``None``.
    """

    def __init__(self, gateway: str, state_path: Path | None) -> None:
        self.gateway = gateway
        self.state_path = state_path
        #: Events still to be handled, by activity key.
        self.pending: dict[str, int] = {}
        #: Handled activity keys, oldest first (a dict as an ordered set).
        self.handled: dict[str, None] = {}
        #: The Bot Connector (``serviceUrl``) of each conversation (channel id) heard from.
        self.service_urls: dict[str, str] = {}
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._file = StateFile(
            gateway,
            state_path,
            logger,
            "activities handled before a restart may be delivered again",
        )

    def load(self) -> None:
        """Read ``state_path`` if it exists.

        Raises:
            GatewayError: The file can't be read or is not the ledger's JSON.
        """

        def parse(state: Any) -> Any:
            handled = [str(k) for k in state["handled"]]
            urls = {str(k): str(v) for k, v in dict(state.get("service_urls", {})).items()}
            return handled, urls

        loaded = self._file.read(parse)
        if loaded is None:
            return
        handled, urls = loaded
        self.handled = dict.fromkeys(handled[-MAX_HANDLED:])
        self.service_urls = urls

    def remember(self, conversation: str, service_url: str) -> None:
        """Keep ``service_url`` as the Bot Connector of ``conversation`` (saved if new)."""
        if self.service_urls.get(conversation) != service_url:
            self.service_urls[conversation] = service_url
            self._save()

    def take(self, key: str, events: int) -> bool:
        """Take an activity of ``events`` events in hand; False for a repeat (taken or
        handled before). An activity of no event is handled at once."""
        if key in self.pending or key in self.handled:
            return False
        if events <= 0:
            self._handled(key)
            return True
        self.pending[key] = events
        return True

    def done(self, key: str) -> None:
        """One event of the activity was handled; the last one makes it handled."""
        left = self.pending.get(key)
        if left is None:
            return
        if left > 1:
            self.pending[key] = left - 1
            return
        del self.pending[key]
        self._handled(key)

    def _handled(self, key: str) -> None:
        self.handled[key] = None
        while len(self.handled) > MAX_HANDLED:
            del self.handled[next(iter(self.handled))]
        self._save()
        waiter = self._waiters.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_done(self, key: str, within: float) -> bool:
        """Wait up to ``within`` seconds for the activity to be handled; whether it was."""
        if key not in self.pending:
            return key in self.handled
        waiter = self._waiters.setdefault(key, asyncio.get_running_loop().create_future())
        try:
            async with asyncio.timeout(within):
                await asyncio.shield(waiter)
        except TimeoutError:
            return False
        return True

    def _save(self) -> None:
        state = {"handled": list(self.handled), "service_urls": self.service_urls}
        self._file.write(state)
