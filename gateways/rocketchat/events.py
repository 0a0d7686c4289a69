"""Rocket.Chat messages in, chat events out: the pure part of the Rocket.Chat gateway.

Shapes are Rocket.Chat's message object (https://developer.rocket.chat/docs/message-object:
``_id``, ``rid`` the room, ``msg`` the text, ``ts``, ``u`` the sender ``{_id, username,
name}``, ``tmid`` the thread's first message, ``t`` a system message's type, ``mentions``,
``file`` / ``files`` / ``attachments``, ``bot`` for an integration's message) and room object
(``t``: ``"d"`` a DM, ``"c"`` a channel, ``"p"`` a private group, ``"l"`` a livechat room;
``name``, ``fname``; ``uids`` of a DM). Over the realtime API a date is EJSON
``{"$date": <ms>}``, over REST an ISO 8601 string.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from layer.types import ChatAttachment, ChatUser

__all__ = [
    "TEXT_LIMIT",
    "attachments",
    "chat_user",
    "emoji_for",
    "is_delivered",
    "kind_of_room",
    "mentions_bot",
    "room_name",
    "split_text",
    "timestamp",
]

#: Most characters of one message (the server's ``Message_MaxAllowedSize``, 5000 by default).
TEXT_LIMIT = 5000

_EMOJI = re.compile(r":?([A-Za-z0-9_+-]+):?")


def timestamp(value: Any) -> int | None:
    """A Rocket.Chat date in milliseconds since the epoch: EJSON ``{"$date": ms}``, an ISO
    8601 string (``2026-12-07T11:50:46.123Z``) or a number; ``None`` for anything else."""
    if isinstance(value, dict):
        value = value.get("$date")
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            return None
    return None


def is_delivered(message: dict[str, Any], bot_id: str, *, bots: bool) -> bool:
    """Whether a message becomes a ``chat.message``: a user's message (no system ``t``, such
    as ``uj`` a user joined), not the bot's own, not another bot's unless ``bots``. (An
    edit, or a thread's count changing, sends the message again with its id: the gateway
    delivers each id once.)"""
    if message.get("t"):
        return False
    sender = message.get("u")
    if not isinstance(sender, dict) or str(sender.get("_id") or "") in ("", bot_id):
        return False
    return bots or not message.get("bot")


def chat_user(message: dict[str, Any]) -> ChatUser:
    """The ``user`` of a message: its sender, ``identity`` ``rocketchat:<user id>`` (a user id
    the server vouches for; a username can be renamed)."""
    found = message.get("u")
    sender: dict[str, Any] = found if isinstance(found, dict) else {}
    user_id = str(sender.get("_id") or "")
    name = sender.get("name") or sender.get("username")
    return {
        "id": user_id,
        "name": str(name) if name else None,
        "is_bot": bool(message.get("bot")),
        "identity": f"rocketchat:{user_id}",
    }


def mentions_bot(message: dict[str, Any], bot_id: str) -> bool:
    """Whether the message's ``mentions`` (what the server parsed of ``@username``) name the
    bot; ``@all`` and ``@here`` do not count."""
    mentions = message.get("mentions")
    return isinstance(mentions, list) and any(
        isinstance(m, dict) and str(m.get("_id")) == bot_id for m in mentions
    )


def attachments(message: dict[str, Any], server_url: str) -> list[ChatAttachment]:
    """The files (``files``, else ``file``; fetched at ``/file-upload/<id>/<name>`` with the
    token's headers) and link attachments (``title``, ``title_link``) of a message."""
    found: list[ChatAttachment] = []
    files = message.get("files")
    if not isinstance(files, list):
        files = [message["file"]] if isinstance(message.get("file"), dict) else []
    for entry in files:
        if not isinstance(entry, dict) or not entry.get("_id"):
            continue
        name = str(entry.get("name") or "")
        size = entry.get("size")
        found.append(
            {
                "name": name or None,
                "url": f"{server_url}/file-upload/{entry['_id']}/{name}",
                "mimetype": str(entry["type"]) if entry.get("type") else None,
                "size": size if isinstance(size, int) and not isinstance(size, bool) else None,
            }
        )
    links = message.get("attachments")
    for entry in links if isinstance(links, list) else ():
        if isinstance(entry, dict) and (entry.get("title_link") or entry.get("title")):
            link = entry.get("title_link")
            url = f"{server_url}{link}" if isinstance(link, str) and link.startswith("/") else link
            found.append(
                {
                    "name": str(entry["title"]) if entry.get("title") else None,
                    "url": str(url) if url else None,
                    "mimetype": None,
                    "size": None,
                }
            )
    return found


def kind_of_room(room: dict[str, Any]) -> Literal["direct", "group"]:
    """``"direct"`` for a DM of one person and the bot (``t`` ``"d"`` with at most two
    ``uids``) or a livechat room (``"l"``), else ``"group"``."""
    kind = room.get("t")
    if kind == "l":
        return "direct"
    if kind == "d":
        uids = room.get("uids")
        return "group" if isinstance(uids, list) and len(uids) > 2 else "direct"
    return "group"


def room_name(room: dict[str, Any]) -> str | None:
    """A channel's or group's name (a discussion's display name ``fname``); ``None`` for a DM."""
    if kind_of_room(room) == "direct":
        return None
    name = room.get("fname") if room.get("prid") else room.get("name")
    return str(name or room.get("name") or "") or None


def emoji_for(reaction: str) -> str | None:
    """The ``:name:`` Rocket.Chat's ``chat.react`` takes for a reaction name (``thumbsup`` or
    ``:thumbsup:``); ``None`` for one that is not a shortcode."""
    match = _EMOJI.fullmatch(reaction.strip())
    return f":{match.group(1)}:" if match else None


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at a line end or a space when
    one is in the piece's second half; ``[""]`` for ``""``."""
    pieces: list[str] = []
    while len(text) > limit:
        cut = max(text.rfind("\n", 0, limit), text.rfind(" ", 0, limit))
        cut = cut if cut > limit // 2 else limit
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n ") if cut < limit else text[cut:]
    pieces.append(text)
    return pieces
