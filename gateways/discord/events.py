"""Discord payloads in, chat events out, and text out: the pure part of the Discord gateway.

Shapes are Discord's: the message object
(https://discord.com/developers/docs/resources/message#message-object), its types
(``DEFAULT`` 0, ``REPLY`` 19), mentions and message formatting
(https://discord.com/developers/docs/reference#message-formatting); the events are those of
``docs/specs/chat.md`` (``layer/types.py``).
"""

from __future__ import annotations

import re
from typing import Any, cast

from layer.types import ChatAttachment, ChatUser

__all__ = [
    "CONTENT_LIMIT",
    "DELIVERED_TYPES",
    "EMOJI",
    "attachments",
    "chat_user",
    "emoji_for",
    "escape_markdown",
    "is_delivered",
    "mentions_bot",
    "reaction_name",
    "reaction_user",
    "split_content",
]

#: Message types delivered as ``chat.message``: a plain message and a reply. Joins, pins,
#: thread notices, boosts and the like are not messages to answer.
DELIVERED_TYPES = frozenset({0, 19})

#: Most characters of a message's ``content`` (Create Message, "content": up to 2000).
CONTENT_LIMIT = 2000

#: Reaction names (as ``chat.react`` gives them, Slack-style) to the Unicode emoji Discord
#: takes; any other reaction is sent as it is: a Unicode emoji, or a custom one ``name:id``.
EMOJI = {
    "thumbsup": "\N{THUMBS UP SIGN}",
    "+1": "\N{THUMBS UP SIGN}",
    "thumbsdown": "\N{THUMBS DOWN SIGN}",
    "-1": "\N{THUMBS DOWN SIGN}",
    "heart": "\N{HEAVY BLACK HEART}\N{VARIATION SELECTOR-16}",
    "eyes": "\N{EYES}",
    "white_check_mark": "\N{WHITE HEAVY CHECK MARK}",
    "heavy_check_mark": "\N{HEAVY CHECK MARK}\N{VARIATION SELECTOR-16}",
    "x": "\N{CROSS MARK}",
    "warning": "\N{WARNING SIGN}\N{VARIATION SELECTOR-16}",
    "tada": "\N{PARTY POPPER}",
    "wave": "\N{WAVING HAND SIGN}",
    "ok_hand": "\N{OK HAND SIGN}",
    "fire": "\N{FIRE}",
    "rocket": "\N{ROCKET}",
    "smile": "\N{SMILING FACE WITH OPEN MOUTH AND SMILING EYES}",
    "pray": "\N{PERSON WITH FOLDED HANDS}",
    "hourglass": "\N{HOURGLASS}",
}

#: The names of ``EMOJI``, by emoji (the first name listed for each).
_NAMES: dict[str, str] = {}
for _name, _emoji in EMOJI.items():
    _NAMES.setdefault(_emoji, _name)

_NAME = re.compile(r"[A-Za-z0-9_+-]+")
_CUSTOM = re.compile(r"[A-Za-z0-9_]+:\d+")
# Markdown Discord renders: emphasis, code, strikethrough, spoilers, block quotes, headers,
# lists, masked links (https://support.discord.com/hc/en-us/articles/210298617).
_MARKDOWN = re.compile(r"([\\*_~`|\[\]()<>])")
# What escaping would break: mentions (users, channels, roles, custom emoji) and links.
_UNESCAPED = re.compile(r"(<@!?\d+>|<#\d+>|<@&\d+>|<a?:\w+:\d+>|https?://[^\s<>]+)")
_LINE_START = re.compile(r"^(\s*)([>#-])", re.MULTILINE)


def is_delivered(payload: dict[str, Any], bot_id: str, *, bots: bool) -> bool:
    """Whether a ``MESSAGE_CREATE`` becomes a ``chat.message``: a plain message or a reply,
    not the bot's own, and not another bot's or a webhook's unless ``bots``."""
    if payload.get("type", 0) not in DELIVERED_TYPES:
        return False
    author = payload.get("author") or {}
    if str(author.get("id")) == bot_id:
        return False
    return bots or not (author.get("bot") or payload.get("webhook_id"))


def mentions_bot(payload: dict[str, Any], bot_id: str) -> bool:
    """Whether a message mentions the bot user: in its ``mentions``, or ``<@id>`` /
    ``<@!id>`` in its content (a reply pings its author only when it keeps the mention on,
    and then the author is in ``mentions``)."""
    for user in payload.get("mentions") or []:
        if isinstance(user, dict) and str(user.get("id")) == bot_id:
            return True
    content = str(payload.get("content") or "")
    return f"<@{bot_id}>" in content or f"<@!{bot_id}>" in content


def chat_user(payload: dict[str, Any]) -> ChatUser:
    """The ``user`` of a chat event from a message's ``author`` (and ``member``).

    ``name`` is the guild nickname, else the display name (``global_name``), else the
    username. ``identity`` is ``discord:<author id>``; a webhook's message (``webhook_id``:
    anyone with the webhook's URL may post under any name) has ``None``.
    """
    author = payload.get("author") or {}
    member = payload.get("member") or {}
    user_id = str(author.get("id") or "")
    name = member.get("nick") or author.get("global_name") or author.get("username")
    identity = None if payload.get("webhook_id") or not user_id else f"discord:{user_id}"
    found: dict[str, Any] = {
        "id": user_id,
        "name": str(name) if name else None,
        "is_bot": bool(author.get("bot") or payload.get("webhook_id")),
        "identity": identity,
    }
    return cast("ChatUser", found)


def reaction_user(payload: dict[str, Any]) -> ChatUser:
    """The ``user`` of a ``chat.reaction`` from a reaction dispatch: ``user_id``, and the
    ``member`` (with its ``user``) Discord adds in a guild; ``identity`` ``discord:<id>``."""
    member = payload.get("member") or {}
    author = member.get("user") or {}
    user_id = str(payload.get("user_id") or "")
    name = member.get("nick") or author.get("global_name") or author.get("username")
    found: dict[str, Any] = {
        "id": user_id,
        "name": str(name) if name else None,
        "is_bot": bool(author.get("bot")),
        "identity": f"discord:{user_id}" if user_id else None,
    }
    return cast("ChatUser", found)


def reaction_name(emoji: dict[str, Any]) -> str:
    """A reaction's name for ``chat.reaction`` from its emoji object: a known Unicode emoji as
    its name (``thumbsup``, as ``EMOJI`` lists it), another as the emoji itself, a custom one
    as ``name:id`` (what ``chat.react`` takes back)."""
    name = str(emoji.get("name") or "")
    if emoji.get("id"):
        return f"{name}:{emoji['id']}"
    return _NAMES.get(name, name)


def attachments(payload: dict[str, Any]) -> list[ChatAttachment]:
    """A message's attachment objects as chat attachments."""
    found: list[ChatAttachment] = []
    for item in payload.get("attachments") or []:
        if not isinstance(item, dict):
            continue
        size = item.get("size")
        found.append(
            {
                "name": item.get("filename"),
                "url": item.get("url"),
                "mimetype": item.get("content_type"),
                "size": size if isinstance(size, int) else None,
            }
        )
    return found


def escape_markdown(text: str) -> str:
    r"""``text`` with Discord's markdown characters escaped, so it shows as written
    (``format: plain``): ``*hi*`` becomes ``\*hi\*``; ``>``, ``#`` and ``-`` at a line's
    start too. Mentions (``<@id>``, ``<#id>``), custom emoji and links are left alone."""
    parts = _UNESCAPED.split(text)
    escaped = [
        part if index % 2 else _MARKDOWN.sub(r"\\\1", part) for index, part in enumerate(parts)
    ]
    return _LINE_START.sub(r"\1\\\2", "".join(escaped))


def split_content(text: str, limit: int = CONTENT_LIMIT) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters: cut at the last line break, else
    the last space, before the limit; else at the limit."""
    pieces: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit + 1)
        if cut <= 0:
            cut = text.rfind(" ", 0, limit + 1)
        if cut <= 0:
            cut = limit
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n ") if cut < len(text) else ""
    if text or not pieces:
        pieces.append(text)
    return pieces


def emoji_for(reaction: str) -> str | None:
    """The emoji Discord takes for a ``chat.react`` ``reaction``: a known name
    (``thumbsup``, ``:eyes:``) as its Unicode emoji, a custom emoji ``name:id`` as it is,
    any other non-ASCII text (a Unicode emoji) as it is; ``None`` for an unknown name."""
    name = reaction.strip().strip(":")
    if name.lower() in EMOJI:
        return EMOJI[name.lower()]
    if _CUSTOM.fullmatch(name):
        return name
    if not name or _NAME.fullmatch(name):
        return None
    return reaction.strip()
