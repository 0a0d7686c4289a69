"""Which Mattermost posts the gateway took and handled, and from when to catch up.

The WebSocket does not confirm delivery: what was posted while the gateway was away (a
connection cut for longer than the server keeps its queue, a restart) is fetched with
``GET /channels/{id}/posts?since=<ms>`` (https://api.mattermost.com/, "Get posts for a
channel", ``since``). ``PostLedger`` keeps the *mark* to fetch from: the ``create_at``
(milliseconds since the epoch) of the oldest post taken and not handled yet, else of the
newest handled; and the ids handled at or above it, so that what the fetch gives again is
not delivered twice. A post is handled once the application asked for the next event (or
its instance ended). With a ``state_path`` it keeps ``{"since": <mark>, "handled": [<ids>]}``
in that file (written atomically after each change), so a restarted gateway catches up from
there.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from gateways import tracking
from gateways.state_file import StateFile

__all__ = ["PostLedger", "TrackedPost"]

logger = logging.getLogger("gateways.mattermost")


class TrackedPost(tracking.TrackedEvent):
    """A chat event made of one Mattermost post; ``post_id`` says which."""

    __slots__ = ("post_id",)

    def __init__(self, post_id: str, event: dict[str, Any]) -> None:
        super().__init__(event)
        self.post_id = post_id


class PostLedger:
    """The posts in hand and handled, and the catch-up mark (see the module).

    Args:
        gateway: The gateway's name, for messages.
        state_path: The file to keep the state in, or ``None``.
    """

    def __init__(self, gateway: str, state_path: Path | None) -> None:
        self.gateway = gateway
        self.state_path = state_path
        #: Catch up from this ``create_at`` (ms); ``None`` before the first post.
        self.mark: int | None = None
        #: Posts taken and not handled yet: their ``create_at``.
        self.pending: dict[str, int] = {}
        #: Posts handled at or above ``mark``: their ``create_at``.
        self.handled: dict[str, int] = {}
        self._file = StateFile(
            gateway, state_path, logger, "posts handled before a restart may be delivered again"
        )

    def load(self) -> None:
        """Read ``state_path`` if it exists.

        Raises:
            GatewayError: The file can't be read or is not the ledger's JSON.
        """

        def parse(state: Any) -> Any:
            mark = None if state["since"] is None else int(state["since"])
            handled = {str(i): int(mark or 0) for i in state.get("handled", [])}
            return mark, handled

        loaded = self._file.read(parse)
        if loaded is None:
            return
        mark, handled = loaded
        self.mark = mark
        self.handled = handled

    def start_at(self, now_ms: int) -> None:
        """Catch up from ``now_ms`` when nothing was kept (the first start)."""
        if self.mark is None:
            self.mark = now_ms

    def take(self, post_id: str, create_at: int) -> bool:
        """Take a post in hand; False when it was taken or handled before (a repeat)."""
        if post_id in self.pending or post_id in self.handled:
            return False
        self.pending[post_id] = create_at
        return True

    def done(self, post_id: str) -> None:
        """The post was handled: move the mark, save."""
        create_at = self.pending.pop(post_id, None)
        if create_at is None:
            return
        self.handled[post_id] = create_at
        newest = max(self.handled.values())
        mark = min(self.pending.values()) if self.pending else newest
        if self.mark is None or mark > self.mark:
            self.mark = mark
            self.handled = {i: at for i, at in self.handled.items() if at >= mark}
        self._save()

    def _save(self) -> None:
        state = {"since": self.mark, "handled": sorted(self.handled)}
        self._file.write(state)
