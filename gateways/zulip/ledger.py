"""What the Zulip gateway took and handled: at least once, never twice, across queues and
restarts.

A Zulip event queue keeps each event until a ``GET /events`` gives a ``last_event_id`` at or
above its ``id`` (https://zulip.com/api/get-events); a queue not polled for some minutes is
deleted by the server, and polling it then answers ``BAD_EVENT_QUEUE_ID``, after which the
client registers a new one and fetches what it missed (https://zulip.com/api/real-time-events).
So two marks are kept, each by a ``Marks``:

- ``events``: the ids of the current queue's events in hand and handled; its mark is the
  ``last_event_id`` that confirms what the application handled (reset with a new queue);
- ``messages``: message ids, the same way; its mark is where fetching what a lost queue
  missed starts (``GET /messages`` with ``anchor``), and a message seen before, from the
  queue or the fetch, is not delivered again.

With a ``state_path`` the ``Ledger`` keeps ``{"queue_id", "last_event_id", "events",
"message_mark", "messages"}`` in that file (written atomically after each change), so a
restarted gateway polls its queue on from where it was, or catches up from its message mark.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, cast

from gateways import tracking
from gateways.state_file import StateFile

__all__ = ["Ledger", "Marks", "TrackedEvent"]

logger = logging.getLogger("gateways.zulip")


class TrackedEvent(tracking.TrackedEvent):
    """A chat event made of one Zulip event: ``event_id`` of queue ``queue_id`` (``None``
    for a message fetched after a queue was lost) and ``message_id`` (``None`` for a
    reaction) say which. Event ids start again in each queue: one of a queue replaced since
    confirms nothing."""

    __slots__ = ("event_id", "message_id", "queue_id")

    def __init__(
        self,
        event_id: int | None,
        message_id: int | None,
        event: dict[str, Any],
        queue_id: str | None = None,
    ) -> None:
        super().__init__(event)
        self.event_id = event_id
        self.message_id = message_id
        self.queue_id = queue_id


class Marks:
    """Ids taken and handled above a mark, below which everything is handled."""

    def __init__(self) -> None:
        #: Every id up to this one is handled (or none of ours); ``None`` before any.
        self.mark: int | None = None
        #: Ids taken and not handled yet.
        self.pending: set[int] = set()
        #: Ids above ``mark`` handled already.
        self.handled: set[int] = set()
        self._highest: int | None = None

    def reset(self, mark: int | None) -> None:
        """Forget everything; start at ``mark``."""
        self.mark, self._highest = mark, mark
        self.pending.clear()
        self.handled.clear()

    def restore(self, mark: int | None, handled: set[int]) -> None:
        """Start from a saved ``mark`` and the ids handled above it."""
        self.mark = mark
        self.handled = {i for i in handled if mark is None or i > mark}
        self._highest = max([i for i in (mark, *self.handled) if i is not None], default=None)

    def seen(self, item: int) -> bool:
        """Whether ``item`` was taken or handled before."""
        if self.mark is not None and item <= self.mark:
            return True
        return item in self.pending or item in self.handled

    def take(self, item: int) -> bool:
        """Take ``item`` in hand; False when it was seen before (a repeat)."""
        if self.seen(item):
            return False
        self.pending.add(item)
        if self._highest is None or item > self._highest:
            self._highest = item
        return True

    def done(self, item: int) -> bool:
        """``item`` was handled: move the mark; whether it was in hand."""
        if item not in self.pending:
            return False
        self.pending.discard(item)
        self.handled.add(item)
        mark = min(self.pending) - 1 if self.pending else self._highest
        if mark is not None and (self.mark is None or mark > self.mark):
            self.mark = mark
            self.handled = {i for i in self.handled if i > mark}
        return True


class Ledger:
    """The queue, its events and the messages (see the module).

    Args:
        gateway: The gateway's name, for messages.
        state_path: The file to keep the state in, or ``None``.
    """

    def __init__(self, gateway: str, state_path: Path | None) -> None:
        self.gateway = gateway
        self.state_path = state_path
        #: The event queue polled, or ``None`` before one is registered.
        self.queue_id: str | None = None
        self.events = Marks()
        self.messages = Marks()
        self._progress = asyncio.Event()
        self._file = StateFile(
            gateway, state_path, logger, "messages handled before a restart may be delivered again"
        )

    @property
    def last_event_id(self) -> int:
        """The ``GET /events`` ``last_event_id`` that confirms what was handled."""
        return -1 if self.events.mark is None else self.events.mark

    def load(self) -> None:
        """Read ``state_path`` if it exists.

        Raises:
            GatewayError: The file can't be read or is not the ledger's JSON.
        """

        def parse(state: Any) -> Any:
            queue_id = state["queue_id"]
            event_mark = int(state["last_event_id"])
            events = {int(i) for i in state.get("events", [])}
            message_mark = state.get("message_mark")
            messages = {int(i) for i in state.get("messages", [])}
            message_mark = None if message_mark is None else int(message_mark)
            return queue_id, event_mark, events, message_mark, messages

        loaded = self._file.read(parse)
        if loaded is None:
            return
        queue_id, event_mark, events, message_mark, messages = loaded
        self.queue_id = str(queue_id) if queue_id is not None else None
        self.events.restore(event_mark, events)
        self.messages.restore(message_mark, messages)

    def new_queue(self, queue_id: str, last_event_id: int, max_message_id: int | None) -> None:
        """A queue was registered: its events start after ``last_event_id``; on a first
        start, the messages before ``max_message_id`` are none of the bot's business."""
        self.queue_id = queue_id
        self.events.reset(last_event_id)
        if self.messages.mark is None and not self.messages.handled:
            self.messages.reset(max_message_id)
        self.save()

    def done(self, event: TrackedEvent) -> None:
        """``event`` was handled: move the marks, save, wake ``wait_progress``."""
        ours = event.event_id is not None and event.queue_id == self.queue_id
        changed = ours and self.events.done(cast("int", event.event_id))
        if event.message_id is not None and self.messages.done(event.message_id):
            changed = True
        if changed:
            self.save()
        self._progress.set()

    def skip(self, event_id: int) -> None:
        """An event taken that makes nothing for the application (a heartbeat, a repeat)."""
        if self.events.done(event_id):
            self.save()
        self._progress.set()

    async def wait_progress(self, within: float) -> None:
        """Wait up to ``within`` seconds for something to be handled."""
        self._progress.clear()
        try:
            async with asyncio.timeout(within):
                await self._progress.wait()
        except TimeoutError:
            pass

    def save(self) -> None:
        """Write the state to ``state_path`` (atomically); a failure is logged once."""
        state = {
            "queue_id": self.queue_id,
            "last_event_id": self.last_event_id,
            "events": sorted(self.events.handled),
            "message_mark": self.messages.mark,
            "messages": sorted(self.messages.handled),
        }
        self._file.write(state)
