"""Which Rocket.Chat messages the gateway handled, per room: nothing lost, nothing twice.

Rocket.Chat's streams deliver a message to the sessions connected when it is posted, and
only to them (https://developer.rocket.chat/apidocs/realtimeapi, "Subscriptions"); what was
posted while the gateway was away is fetched afterwards with the realtime method
``loadMissedMessages`` (the room's messages posted after a time, which Rocket.Chat's own web
client calls when it reconnects). So the gateway keeps, per room, a *mark*: every message of
the room older than it was handled (or was not to be delivered). A message is *pending* from
its arrival until the application handled it (``Gateway.event_handled``); the mark never
passes a pending message. Messages at or after the mark that were handled are remembered by
id, so a catch-up from the mark skips them.

With a ``state_path``, ``{"rooms": {<room id>: {"mark": <ms>, "handled": {<message id>:
<ms>}}}}`` is kept in that file (written atomically after each change), so a restarted
gateway fetches from each room's mark and skips what was handled just before the restart.
Times are Rocket.Chat's message ``ts``, in milliseconds since the epoch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from gateways.state_file import StateFile

__all__ = ["RoomLedger"]

logger = logging.getLogger("gateways.rocketchat")


class RoomLedger:
    """The marks, the pending and the handled messages of each room (see the module).

    Args:
        gateway: The gateway's name, for messages.
        state_path: The file to keep the state in, or ``None``.
    """

    def __init__(self, gateway: str, state_path: Path | None) -> None:
        self.gateway = gateway
        self.state_path = state_path
        #: Per room: every message older than this (ms) is handled.
        self.marks: dict[str, int] = {}
        #: Per room: the handled messages at or after its mark, id to ``ts``.
        self.handled: dict[str, dict[str, int]] = {}
        #: Messages taken and not handled yet: id to ``(room, ts)``.
        self.pending: dict[str, tuple[str, int]] = {}
        self._file = StateFile(
            gateway,
            state_path,
            logger,
            "messages handled before a restart may be answered again",
            kind="a Rocket.Chat gateway's state file",
        )

    def load(self) -> None:
        """Read ``state_path``, when it exists.

        Raises:
            GatewayError: The file exists but is not the ledger's JSON.
        """

        def parse(state: Any) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
            marks, handled = {}, {}
            for room, entry in state["rooms"].items():
                marks[str(room)] = int(entry["mark"])
                handled[str(room)] = {str(k): int(v) for k, v in entry["handled"].items()}
            return marks, handled

        loaded = self._file.read(parse)
        if loaded is not None:
            self.marks.update(loaded[0])
            self.handled.update(loaded[1])

    def know(self, room: str, since: int) -> bool:
        """Start following ``room`` from ``since`` (ms), unless it has a mark already; whether
        it is new. (Call ``save`` after: a restart then fetches from that mark.)"""
        if room in self.marks:
            return False
        self.marks[room] = since
        self.handled.setdefault(room, {})
        return True

    def forget(self, room: str) -> None:
        """Stop following ``room`` (the bot is no longer in it) and save."""
        self.marks.pop(room, None)
        self.handled.pop(room, None)
        self.save()

    def seen(self, room: str, message_id: str) -> bool:
        """Whether the message is pending or handled (at or after its room's mark)."""
        return message_id in self.pending or message_id in self.handled.get(room, {})

    def take(self, room: str, message_id: str, ts: int) -> None:
        """A message arrived and is being handed to the application (in a room not followed
        yet, the room's mark is its time, saved at once)."""
        new = self.know(room, ts)
        self.pending[message_id] = (room, ts)
        if new:
            self.save()

    def skip(self, room: str, message_id: str, ts: int) -> None:
        """A message arrived that is not delivered (the bot's own, filtered): handled."""
        self.take(room, message_id, ts)
        self.done(message_id)

    def done(self, message_id: str) -> None:
        """The application handled the message: move the room's mark on and save."""
        entry = self.pending.pop(message_id, None)
        if entry is None:
            return
        room, ts = entry
        handled = self.handled.setdefault(room, {})
        handled[message_id] = ts
        waiting = [t for r, t in self.pending.values() if r == room]
        mark = min(waiting) if waiting else max(handled.values())
        mark = max(mark, self.marks.get(room, mark))
        self.marks[room] = mark
        self.handled[room] = {k: t for k, t in handled.items() if t >= mark}
        self.save()

    def since(self, room: str) -> int | None:
        """The time (ms) from which ``room``'s messages may not all be handled."""
        return self.marks.get(room)

    def save(self) -> None:
        """Write the state to ``state_path`` (atomically), when there is one."""
        data: dict[str, Any] = {
            "rooms": {
                room: {"mark": mark, "handled": self.handled.get(room, {})}
                for room, mark in self.marks.items()
            }
        }
        self._file.write(data)
