"""What is in a ``MattermostTestServer``: teams, channels (open, private, DMs, group DMs),
users, posts and reactions, as the Mattermost API v4 shapes them
(https://api.mattermost.com/, "Schema": ``User``, ``Team``, ``Channel``, ``Post``,
``Reaction``), and the waiting a test does on them.
"""

from __future__ import annotations

import asyncio
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MattermostWorld", "SentPost", "new_id"]

_ALPHABET = string.ascii_lowercase + string.digits


def new_id() -> str:
    """A new Mattermost id: 26 characters ``a-z0-9`` (the server's ``model.NewId()``)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(26))


@dataclass(frozen=True)
class SentPost:
    """A post the bot created through ``POST /api/v4/posts``.

    Attributes:
        id: The post's id.
        channel_id: Where.
        message: Its text.
        root_id: The thread's root post, ``""`` at the top level.
        props: Its props (``attachments``...).
        pending_post_id: The ``pending_post_id`` the client sent.
    """

    id: str
    channel_id: str
    message: str
    root_id: str
    props: dict[str, Any] = field(default_factory=dict)
    pending_post_id: str = ""


class MattermostWorld:
    """The server's data.

    Args:
        bot_name: The bot's username.
        token: The access token accepted (a new one when ``None``).
    """

    def __init__(self, *, bot_name: str = "gatewaybot", token: str | None = None) -> None:
        self.token = token or new_id()
        self.users: dict[str, dict[str, Any]] = {}
        self.teams: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.members: dict[str, set[str]] = {}
        self.posts: dict[str, dict[str, Any]] = {}
        self.reactions: list[dict[str, Any]] = []
        #: What the bot created, in order (``wait_for_sent``).
        self.sent: list[SentPost] = []
        #: ``(channel_id, parent_id)`` of every typing call.
        self.typing: list[tuple[str, str]] = []
        self._last_at = 0
        self._changed = asyncio.Event()
        self.bot = self.add_user(bot_name, bot=True)

    @property
    def bot_id(self) -> str:
        """The bot user's id."""
        return str(self.bot["id"])

    def now(self) -> int:
        """Milliseconds since the epoch, strictly increasing (each post's ``create_at``)."""
        self._last_at = max(self._last_at + 1, int(time.time() * 1000))
        return self._last_at

    # -- building the world ----------------------------------------------------------------

    def add_user(self, username: str, *, bot: bool = False) -> dict[str, Any]:
        """A user (``is_bot`` for a bot account); returns the ``User`` object."""
        user = {
            "id": new_id(),
            "username": username,
            "nickname": "",
            "first_name": "",
            "last_name": "",
            "is_bot": bot,
            "roles": "system_user",
            "create_at": self.now(),
            "update_at": 0,
            "delete_at": 0,
        }
        self.users[str(user["id"])] = user
        return user

    def add_team(self, name: str) -> str:
        """A team the bot is in; returns its id."""
        team_id = new_id()
        self.teams[team_id] = {"id": team_id, "name": name, "display_name": name, "type": "O"}
        return team_id

    def add_channel(
        self,
        team_id: str,
        name: str,
        *,
        private: bool = False,
        members: list[str] | None = None,
        bot_member: bool = True,
    ) -> str:
        """An open (or private) channel of a team; the bot and ``members`` (user ids) are
        in it. Returns its id."""
        return self._new_channel(
            team_id,
            "P" if private else "O",
            name,
            name.replace("-", " ").title(),
            [*(members or []), *([self.bot_id] if bot_member else [])],
        )

    def dm(self, user_id: str) -> str:
        """The DM between ``user_id`` and the bot (type ``D``, named ``<id>__<id>``)."""
        ids = sorted([user_id, self.bot_id])
        name = "__".join(ids)
        for channel in self.channels.values():
            if channel["name"] == name:
                return str(channel["id"])
        return self._new_channel("", "D", name, "", ids)

    def group_dm(self, user_ids: list[str]) -> str:
        """A group DM of ``user_ids`` and the bot (type ``G``)."""
        ids = sorted({*user_ids, self.bot_id})
        names = ", ".join(str(self.users[i]["username"]) for i in ids)
        return self._new_channel("", "G", new_id(), names, ids)

    def _new_channel(
        self, team_id: str, kind: str, name: str, display_name: str, members: list[str]
    ) -> str:
        channel_id = new_id()
        self.channels[channel_id] = {
            "id": channel_id,
            "team_id": team_id,
            "type": kind,
            "name": name,
            "display_name": display_name,
            "header": "",
            "purpose": "",
            "create_at": self.now(),
            "update_at": 0,
            "delete_at": 0,
            "last_post_at": 0,
            "total_msg_count": 0,
            "creator_id": "",
        }
        self.members[channel_id] = set(members)
        return channel_id

    def new_post(
        self,
        channel_id: str,
        user_id: str,
        message: str,
        *,
        root_id: str = "",
        props: dict[str, Any] | None = None,
        files: list[dict[str, Any]] | None = None,
        post_type: str = "",
    ) -> dict[str, Any]:
        """Store a new ``Post`` (not broadcast).

        Raises:
            KeyError: Unknown channel, user or root post.
        """
        channel = self.channels[channel_id]
        if user_id not in self.users:
            raise KeyError(user_id)
        if root_id:
            root = self.posts[root_id]
            root_id = str(root.get("root_id") or "") or root_id
        at = self.now()
        post: dict[str, Any] = {
            "id": new_id(),
            "create_at": at,
            "update_at": at,
            "edit_at": 0,
            "delete_at": 0,
            "is_pinned": False,
            "user_id": user_id,
            "channel_id": channel_id,
            "root_id": root_id,
            "original_id": "",
            "message": message,
            "type": post_type,
            "props": dict(props or {}),
            "hashtags": "",
            "pending_post_id": "",
            "reply_count": 0,
            "metadata": {"files": files} if files else {},
        }
        self.posts[str(post["id"])] = post
        channel["last_post_at"] = at
        channel["total_msg_count"] = int(channel["total_msg_count"]) + 1
        return post

    def mentioned(self, message: str) -> list[str]:
        """The ids of the users ``@username`` mentions in ``message``."""
        words = {w.strip(".,:;!?").lower() for w in message.split() if w.startswith("@")}
        return [i for i, u in self.users.items() if f"@{str(u['username']).lower()}" in words]

    # -- waiting ---------------------------------------------------------------------------

    async def wait_for_sent(
        self, count: int = 1, *, channel_id: str | None = None, within: float = 5.0
    ) -> SentPost:
        """Wait until the bot created ``count`` posts (in ``channel_id`` if given); return
        the ``count``-th.

        Raises:
            TimeoutError: Fewer within ``within`` seconds; the message lists what was sent.
        """

        def matching() -> list[SentPost]:
            return [s for s in self.sent if channel_id is None or s.channel_id == channel_id]

        try:
            await self.until(lambda: len(matching()) >= count, within)
        except TimeoutError:
            seen = [(s.channel_id, s.message) for s in self.sent]
            raise TimeoutError(
                f"the bot did not create {count} posts within {within} s; created: {seen}"
            ) from None
        return matching()[count - 1]

    async def until(self, predicate: Callable[[], bool], within: float | None) -> None:
        """Wait until ``predicate()`` is true, re-checked whenever the state changes.

        Raises:
            TimeoutError: Not within ``within`` seconds (``None``: no bound).
        """
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def notify(self) -> None:
        """Wake the waiters of ``until`` (the state changed)."""
        self._changed.set()
