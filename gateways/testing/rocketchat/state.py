"""The world of ``RocketChatTestServer``: users, rooms, messages, and what the bot did.

Shapes are Rocket.Chat's (https://developer.rocket.chat/docs/message-object, room object:
``t`` ``"c"`` channel, ``"p"`` private group, ``"d"`` DM). Times are kept in milliseconds
since the epoch, each message's ``ts`` later than the one before, and shown as EJSON
``{"$date": ms}`` over the realtime API, ISO 8601 over REST.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["Reaction", "World", "ejson", "iso"]

_ID_CHARS = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_.-]+)")


def new_id() -> str:
    """A fresh id, as Meteor's ``Random.id()`` makes them (17 characters)."""
    return "".join(secrets.choice(_ID_CHARS) for _ in range(17))


def iso(ms: int) -> str:
    """``ms`` since the epoch as Rocket.Chat's REST API writes a date."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def ejson(message: dict[str, Any], date: Any = None) -> dict[str, Any]:
    """A stored message with its dates as the realtime API (EJSON ``{"$date": ms}``) or, with
    ``date=iso``, as REST shows them."""
    shown = dict(message)
    for key in ("ts", "_updatedAt", "editedAt"):
        if isinstance(shown.get(key), int):
            shown[key] = date(shown[key]) if date is not None else {"$date": shown[key]}
    return shown


@dataclass(frozen=True, slots=True)
class Reaction:
    """A ``chat.react`` the bot made: ``message_id``, ``emoji`` (``:thumbsup:``), ``added``."""

    message_id: str
    emoji: str
    added: bool


@dataclass
class World:
    """Users, rooms and messages; the bot is a user of its own.

    Attributes:
        bot: The bot's user object.
        users: Users by id.
        rooms: Rooms by id; ``uids`` lists the members.
        messages: Every message by id, in the order posted.
        sent: The messages the bot posted over REST, in order.
        reactions: The bot's ``chat.react`` calls, in order.
        typing: ``(room id, tmid or None)`` of each typing notice the bot sent.
    """

    bot: dict[str, Any]
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    rooms: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    reactions: list[Reaction] = field(default_factory=list)
    typing: list[tuple[str, str | None]] = field(default_factory=list)
    _last: int = 0
    _changed: asyncio.Condition | None = None

    def __post_init__(self) -> None:
        self.users[self.bot["_id"]] = self.bot

    @property
    def changed(self) -> asyncio.Condition:
        """Notified whenever the bot sent, reacted or typed."""
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    def add_user(self, username: str, name: str | None = None) -> dict[str, Any]:
        """A new user; its object (``_id``, ``username``, ``name``)."""
        user = {"_id": new_id(), "username": username, "name": name or username.title()}
        self.users[user["_id"]] = user
        return user

    def add_room(self, name: str, *, kind: str = "c", members: list[str] | None = None) -> str:
        """A new channel (``kind`` ``"c"``) or private group (``"p"``) with the bot and
        ``members`` (user ids) in it; its id."""
        room_id = new_id()
        uids = [self.bot["_id"], *(members or [])]
        self.rooms[room_id] = {"_id": room_id, "t": kind, "name": name, "fname": name, "uids": uids}
        return room_id

    def dm(self, user_id: str) -> str:
        """The DM of a user and the bot (its id is both user ids, sorted, side by side)."""
        uids = sorted([self.bot["_id"], user_id])
        room_id = "".join(uids)
        if room_id not in self.rooms:
            usernames = [self.users[u]["username"] for u in uids]
            self.rooms[room_id] = {"_id": room_id, "t": "d", "uids": uids, "usernames": usernames}
        return room_id

    def store(
        self,
        room_id: str,
        user: dict[str, Any],
        text: str,
        *,
        tmid: str | None = None,
        message_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Store a message as the server would: ``ts`` now (after the previous one),
        ``mentions`` of the ``@usernames`` in ``text``, the room's ``lm``; the message."""
        now = max(int(time.time() * 1000), self._last + 1)
        self._last = now
        by_name = {u["username"]: u for u in self.users.values()}
        mentions = [
            {"_id": by_name[n]["_id"], "username": n}
            for n in _MENTION.findall(text)
            if n in by_name
        ]
        message: dict[str, Any] = {
            **(extra or {}),
            "_id": message_id or new_id(),
            "rid": room_id,
            "msg": text,
            "ts": now,
            "u": {k: user[k] for k in ("_id", "username", "name") if k in user},
            "mentions": mentions,
            "_updatedAt": now,
        }
        if tmid is not None:
            message["tmid"] = tmid
        self.messages[message["_id"]] = message
        self.rooms[room_id]["lm"] = now
        return message

    def missed(self, room_id: str, since: int) -> list[dict[str, Any]]:
        """The room's messages after ``since`` (ms), newest first (``loadMissedMessages``)."""
        found = [m for m in self.messages.values() if m["rid"] == room_id and m["ts"] > since]
        return sorted(found, key=lambda m: m["ts"], reverse=True)

    def member_rooms(self) -> list[dict[str, Any]]:
        """The rooms the bot is in."""
        return [r for r in self.rooms.values() if self.bot["_id"] in r.get("uids", ())]
