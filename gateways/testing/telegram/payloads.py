"""Bot API objects as Telegram sends them: users, chats, messages with their entities,
updates. The shapes are those of https://core.telegram.org/bots/api#available-types
(``User``, ``Chat``, ``Message``, ``MessageEntity``, ``CallbackQuery``) and
https://core.telegram.org/bots/api#update (``Update``).

Entity offsets and lengths are in UTF-16 code units, as the Bot API counts them
(https://core.telegram.org/bots/api#messageentity).
"""

from __future__ import annotations

import re
import time
from typing import Any

__all__ = [
    "entities_of",
    "forum",
    "group",
    "private_chat",
    "user",
    "utf16_len",
]

#: A bot command (https://core.telegram.org/bots/api#messageentity, type ``bot_command``):
#: ``/`` then up to 32 letters, digits and underscores, optionally ``@botusername``.
_COMMAND = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![\w@])")
#: A mention (type ``mention``): ``@username``, 5 to 32 letters, digits and underscores.
_MENTION = re.compile(r"(?<![\w@/])@[A-Za-z0-9_]{3,32}(?!\w)")


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (how the Bot API counts entity offsets)."""
    return len(text.encode("utf-16-le")) // 2


def user(
    user_id: int,
    first_name: str,
    *,
    username: str | None = None,
    last_name: str | None = None,
    is_bot: bool = False,
) -> dict[str, Any]:
    """A ``User`` (https://core.telegram.org/bots/api#user)."""
    found: dict[str, Any] = {"id": user_id, "is_bot": is_bot, "first_name": first_name}
    if last_name is not None:
        found["last_name"] = last_name
    if username is not None:
        found["username"] = username
    return found


def private_chat(person: dict[str, Any]) -> dict[str, Any]:
    """The private ``Chat`` of a user with the bot: its id is the user's id
    (https://core.telegram.org/bots/api#chat, type ``private``)."""
    chat: dict[str, Any] = {"id": person["id"], "type": "private"}
    for key in ("first_name", "last_name", "username"):
        if key in person:
            chat[key] = person[key]
    return chat


def group(chat_id: int, title: str, *, supergroup: bool = True) -> dict[str, Any]:
    """A group ``Chat``: a supergroup (ids ``-100...``) or a basic group (negative ids)."""
    return {"id": chat_id, "type": "supergroup" if supergroup else "group", "title": title}


def forum(chat_id: int, title: str) -> dict[str, Any]:
    """A supergroup with topics enabled (``is_forum``): each topic is a message thread, its
    ``message_thread_id`` the id of the message that created it
    (https://core.telegram.org/bots/api#chat, ``is_forum``)."""
    return {"id": chat_id, "type": "supergroup", "title": title, "is_forum": True}


def entities_of(text: str) -> list[dict[str, Any]]:
    """The ``bot_command`` and ``mention`` entities Telegram's servers find in ``text``
    (``/start``, ``/temp@thermo_bot``, ``@alice``), in order.

    Telegram marks a command anywhere in the text, and a mention of any ``@username``
    (https://core.telegram.org/bots/api#messageentity).
    """
    found = sorted(
        (match.start(), match.end(), kind)
        for pattern, kind in ((_COMMAND, "bot_command"), (_MENTION, "mention"))
        for match in pattern.finditer(text)
    )
    return [
        {
            "type": kind,
            "offset": utf16_len(text[:start]),
            "length": utf16_len(text[start:end]),
        }
        for start, end, kind in found
    ]


def now() -> int:
    """Unix time in seconds, as a ``Message``'s ``date``."""
    return int(time.time())
