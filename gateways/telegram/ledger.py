"""Which updates the Telegram gateway took and handled: at least once, never twice.

Telegram keeps an update until the bot confirms it: with ``getUpdates`` by asking with an
``offset`` above its ``update_id`` (https://core.telegram.org/bots/api#getupdates), with a
webhook by answering its request 2xx (https://core.telegram.org/bots/api#setwebhook). The
gateway confirms an update only once the application handled the event made of it (asked
for the next event, or its instance ended: ``gateways.instance``), so an update taken by a
process that dies is delivered again to the next one.

``UpdateLedger`` keeps the ``update_id`` s in hand (``pending``) and those handled above the
confirmed mark (``handled``); an update it has seen is not delivered again (Telegram
returns every unconfirmed update to each ``getUpdates``). With a ``state_path`` it keeps
``{"last_update_id": <confirmed mark>, "handled": [<ids above it>]}`` in that file
(written atomically after each change), so a restarted gateway skips what was handled just
before the restart, before Telegram heard of it.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from gateways import tracking
from gateways.state_file import StateFile

__all__ = ["TrackedEvent", "UpdateLedger"]

logger = logging.getLogger("gateways.telegram")


class TrackedEvent(tracking.TrackedEvent):
    """A chat event made of one Telegram update; ``update_id`` says which."""

    __slots__ = ("update_id",)

    def __init__(self, update_id: int, event: dict[str, Any]) -> None:
        super().__init__(event)
        self.update_id = update_id


class UpdateLedger:
    """The updates in hand and handled, and the confirmed mark (see the module).

    Args:
        gateway: The gateway's name, for messages.
        state_path: The file to keep the state in, or ``None``.
    """

    def __init__(self, gateway: str, state_path: Path | None) -> None:
        self.gateway = gateway
        self.state_path = state_path
        #: Every update up to this id is handled; ``None`` before the first.
        self.confirmed: int | None = None
        #: Updates taken and not handled yet.
        self.pending: set[int] = set()
        #: Updates above ``confirmed`` handled already.
        self.handled: set[int] = set()
        self._highest: int | None = None
        self._waiters: dict[int, asyncio.Future[None]] = {}
        self._progress = asyncio.Event()
        self._file = StateFile(
            gateway, state_path, logger, "updates handled before a restart may be delivered again"
        )

    @property
    def offset(self) -> int | None:
        """The ``getUpdates`` ``offset`` that confirms what was handled: ``confirmed + 1``."""
        return None if self.confirmed is None else self.confirmed + 1

    def load(self) -> None:
        """Read ``state_path`` if it exists.

        Raises:
            GatewayError: The file can't be read or is not the ledger's JSON.
        """

        def parse(state: Any) -> tuple[int | None, set[int]]:
            confirmed = state["last_update_id"]
            handled = {int(i) for i in state.get("handled", [])}
            return (None if confirmed is None else int(confirmed)), handled

        loaded = self._file.read(parse)
        if loaded is None:
            return
        confirmed, handled = loaded
        self.confirmed = confirmed
        self.handled = {i for i in handled if confirmed is None or i > confirmed}
        self._highest = max([i for i in (confirmed, *self.handled) if i is not None], default=None)

    def take(self, update_id: int) -> bool:
        """Take an update in hand; False when it was taken or handled before (a repeat)."""
        if self.confirmed is not None and update_id <= self.confirmed:
            return False
        if update_id in self.pending or update_id in self.handled:
            return False
        self.pending.add(update_id)
        if self._highest is None or update_id > self._highest:
            self._highest = update_id
        return True

    def done(self, update_id: int) -> None:
        """The update was handled: move the confirmed mark, save, wake its waiter."""
        if update_id not in self.pending:
            return
        self.pending.discard(update_id)
        self.handled.add(update_id)
        mark = min(self.pending) - 1 if self.pending else self._highest
        if mark is not None and (self.confirmed is None or mark > self.confirmed):
            self.confirmed = mark
            self.handled = {i for i in self.handled if i > mark}
        self._save()
        waiter = self._waiters.pop(update_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._progress.set()

    async def wait_done(self, update_id: int, within: float) -> bool:
        """Wait up to ``within`` seconds for the update to be handled; whether it was."""
        if update_id not in self.pending:
            return True
        waiter = self._waiters.setdefault(update_id, asyncio.get_running_loop().create_future())
        try:
            async with asyncio.timeout(within):
                await asyncio.shield(waiter)
        except TimeoutError:
            return False
        return True

    async def wait_progress(self, within: float) -> None:
        """Wait up to ``within`` seconds for an update to be handled."""
        self._progress.clear()
        try:
            async with asyncio.timeout(within):
                await self._progress.wait()
        except TimeoutError:
            pass

    def _save(self) -> None:
        state = {"last_update_id": self.confirmed, "handled": sorted(self.handled)}
        self._file.write(state)
